"""Realistic rhythm takes with known hits, built from recorded sounds the project did not make.

Why: an extractor tuned on the project's own synthetic prompts scores far lower on what a user
records. Here a take is played with

- `kit`: the multi-velocity one-shots of Debian's hydrogen-drumkits (`darc_bridge.kits`),
- `gm`: the General MIDI drum programs of FluidR3_GM, rendered by FluidSynth,
- `vocal`: vocal-percussion syllables spoken by espeak-ng ("boom"/"doom" kick, "ka"/"tch"/"pf"
  snare, "ts"/"tss"/"t" hat),
- `synth`: the project's own synthetic voices (`audio.prompts`, `data.voices`), one family among several,

on the 16th grid of a drumless mix (`audio.music.synth_drumless_mix`), at 80-180 BPM. The `clean`
tier is the dry take; the `realistic` tier puts it in a room (RT60 0.3-0.8 s), adds noise at
6-25 dB SNR, bleed of the mix, rumble or mains hum, ghost notes, flams, 16th hats up to 180 BPM,
mouth clicks and breaths, and plays everything a constant 0-40 ms late.

Every source (kit, GM program, espeak voice, synthetic family, room) belongs to one side of
`darc_bridge.kits.splits`: tune on `tune`, report on `held_out`. Public API: `TakeCase`, `Take`,
`take_cases(seed, split, ...)`, `build_take(case)`; the DARC training data may reuse them.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import librosa
import numpy as np
import soundfile as sf
from scipy.signal import butter, fftconvolve, sosfilt

from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.audio.prompts import add_noise, synth_prompt
from darc_bridge.data import voices
from darc_bridge.errors import InputError
from darc_bridge.kits import find_drumkits, find_soundfonts, read_drumkit, render_gm_notes
from darc_bridge.kits.soundfont import GM_DRUM_PROGRAMS
from darc_bridge.kits.splits import ESPEAK_VOICES, GM_PROGRAMS, HYDROGEN_KITS, ROOMS, Split
from darc_bridge.rhythm.features import Onset

Tier = Literal["clean", "realistic"]
PROMPT_TYPES = ("kit", "gm", "vocal", "synth")
TIERS: tuple[Tier, ...] = ("clean", "realistic")
SAMPLE_RATE = 44100
TAKE_S = 8.0  # about 8 s a take (whole bars): enough hits for an F1, little CPU

# The project's synthetic voices: prompts.py voices and the data/voices.py families, split like the kits.
SYNTH_FAMILIES: dict[Split, tuple[str, ...]] = {
    "tune": ("beatbox", "tap", "noise", "click"),
    "held_out": ("voice", "acoustic", "electro"),
}
# (RT60 s, direct-to-reverberant ratio dB): small dry rooms to a reverberant stairwell, 0.3-0.8 s.
ROOM_SHAPES: dict[str, tuple[float, float]] = {
    "booth": (0.3, 6.0), "bedroom": (0.45, 3.0), "kitchen": (0.6, 0.0), "hall": (0.8, -2.0),
    "studio": (0.35, 4.0), "living_room": (0.5, 1.5), "garage": (0.65, -1.0), "stairwell": (0.8, -3.0),
}
# Espeak phoneme strings per class: what people say when they beatbox without training.
SYLLABLES = (("boom", "doom", "[[bUm]]"), ("ka", "[[tS@]]", "[[pf]]"), ("[[ts:]]", "[[ts]]", "[[t]]"))
GM_NOTES = ((36, 35), (38, 40), (42, 44))
CLASS_GAIN = voices.CLASS_GAIN[:3]  # kick loudest, hats quieter, as in a played kit
MAX_SHOT_S = 1.0  # one-shots are cut here (with a fade): kick, snare and closed hats ring shorter


@dataclass(frozen=True)
class TakeCase:
    """One take to build: everything else follows from the seed."""

    prompt_type: str
    tier: Tier
    split: Split
    seed: int


@dataclass
class Take:
    """A take and its truth. `truth` holds one Onset per played hit (classes 0 kick, 1 snare, 2 hat;
    a flam is one hit at its first stroke; kick and hat together are two hits at one time)."""

    case: TakeCase
    audio: np.ndarray  # mono float32
    sample_rate: int
    truth: list[Onset]
    bpm: float
    mix: np.ndarray  # (2, n) the drumless mix the take was played over
    grid: np.ndarray  # the mix's 16th grid, seconds
    source: str  # kit name, GM program, espeak voice or synthetic family
    room: str | None = None
    details: dict = field(default_factory=dict)


def take_cases(seed: int, split: Split, n_per_type: int = 8, tiers: tuple[Tier, ...] = TIERS,
               prompt_types: tuple[str, ...] = PROMPT_TYPES) -> list[TakeCase]:
    """`n_per_type` cases per prompt type and tier, seeds drawn from `seed` (distinct per case)."""
    if split not in ("tune", "held_out"):
        raise ValueError(f"unknown split {split!r}; use 'tune' or 'held_out'")
    unknown = set(prompt_types) - set(PROMPT_TYPES)
    if unknown:
        raise ValueError(f"unknown prompt types {sorted(unknown)}; choose from {PROMPT_TYPES}")
    out = []
    for ti, tier in enumerate(tiers):
        for pi, ptype in enumerate(prompt_types):
            for i in range(n_per_type):
                out.append(TakeCase(ptype, tier, split, seed * 100003 + ti * 10007 + pi * 1009 + i))
    return out


# ---------------------------------------------------------------- recorded one-shots


def _fade_cut(x: np.ndarray, sr: int) -> np.ndarray:
    """Mono float32, peak 1, cut to MAX_SHOT_S with a 20 ms raised-cosine fade."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0 if x.shape[0] <= 2 else 1)
    n = min(x.size, int(MAX_SHOT_S * sr))
    x = x[:n].copy()
    fade = min(n, int(0.02 * sr))
    x[n - fade:] *= np.cos(np.linspace(0.0, np.pi / 2, fade)) ** 2
    peak = float(np.max(np.abs(x)))
    return (x / peak if peak > 0 else x).astype(np.float32)


def _trim_lead(x: np.ndarray, rel_db: float = -40.0) -> np.ndarray:
    """Drop the silence before the first sample within `rel_db` of the peak (espeak pads its output)."""
    a = np.abs(x)
    above = np.flatnonzero(a >= a.max() * 10 ** (rel_db / 20.0))
    return x[max(0, above[0] - 32):] if above.size else x


@functools.lru_cache(maxsize=512)
def _read_shot(path: str) -> np.ndarray:
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    if sr != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    return _fade_cut(_trim_lead(x, -50.0), SAMPLE_RATE)


@functools.lru_cache(maxsize=16)
def _hydrogen_kits() -> dict[str, Path]:
    return {read_drumkit(p).name: p for p in find_drumkits()}


@functools.lru_cache(maxsize=16)
def _kit_layers(name: str) -> tuple[tuple[tuple[str, float, float], ...], ...]:
    """Per class (kick, snare, hat): (sample path, min velocity, max velocity) of one instrument each."""
    path = _hydrogen_kits().get(name)
    if path is None:
        raise InputError(f"Hydrogen kit {name!r} is not installed (Debian: apt install hydrogen-drumkits)")
    pieces = read_drumkit(path).by_piece()
    out = []
    for piece in ("kick", "snare", "hat"):
        insts = pieces.get(piece)
        if not insts:
            raise InputError(f"Hydrogen kit {name!r} has no {piece}")
        inst = max(insts, key=lambda i: len(i.layers))  # the main instrument has the most velocity layers
        out.append(tuple((str(la.path), la.min_velocity, la.max_velocity) for la in inst.layers))
    return tuple(out)


def _kit_shot(name: str, cls: int, strength: float) -> np.ndarray:
    layers = _kit_layers(name)[cls]
    pick = next((p for p, lo, hi in layers if lo <= strength <= hi), layers[-1][0])
    return _read_shot(pick)


GM_VELOCITIES = (40, 80, 120)


@functools.lru_cache(maxsize=16)
def _gm_shots(program: str) -> dict[tuple[int, int], np.ndarray]:
    fonts = [f for f in find_soundfonts() if "fluidr3_gm" in f.name.lower()] or find_soundfonts()
    if not fonts:
        raise InputError("no GM SoundFont found (Debian: apt install fluid-soundfont-gm)")
    hits = [(note, vel) for notes in GM_NOTES for note in notes for vel in GM_VELOCITIES]
    shots = render_gm_notes(fonts[0], hits, SAMPLE_RATE, GM_DRUM_PROGRAMS[program], slot_s=1.2)
    return {hit: _fade_cut(_trim_lead(s.mean(axis=0), -50.0), SAMPLE_RATE) for hit, s in zip(hits, shots, strict=True)}


@functools.lru_cache(maxsize=128)
def _espeak(voice: str, text: str, speed: int, pitch: int) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise InputError("vocal takes need espeak-ng (Debian: apt install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="darc-espeak-") as tmp:
        wav = Path(tmp) / "s.wav"
        run = subprocess.run([exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(wav), text],
                             capture_output=True, text=True, timeout=30)
        if run.returncode != 0 or not wav.is_file():
            raise InputError(f"espeak-ng could not speak {text!r} with voice {voice}: {run.stderr.strip()[-200:]}")
        x, sr = sf.read(wav, dtype="float32")
    if x.ndim == 2:
        x = x.mean(axis=1)
    x = librosa.resample(x, orig_sr=sr, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    a = np.abs(x)
    keep = np.flatnonzero(a >= a.max() * 0.01)
    return _fade_cut(x[max(0, keep[0] - 32): keep[-1] + 1] if keep.size else x, SAMPLE_RATE)


# ---------------------------------------------------------------- the performance


def _pattern(rng: np.random.Generator, bpm: float, n_bars: int, realistic: bool) -> tuple[list[Onset], list[float]]:
    """Hits on the 16th grid (bar 0 beat 1 on; the first beat is a lead-in), plus the times of
    flam grace strokes. Returns (truth, grace stroke times as (time, strength) pairs folded in details)."""
    step = 60.0 / bpm / 4.0
    hat_modes = ["8ths", "16ths", "offbeats"] if realistic or bpm <= 130 else ["8ths", "offbeats"]
    hat_mode = str(rng.choice(hat_modes))
    kick_extra = [s for s in (3, 6, 10, 11, 14) if rng.random() < 0.3]
    truth: list[Onset] = []
    flams: list[float] = []
    for i in range(4, n_bars * 16):  # step 0..3: one beat of lead-in
        pos, t = i % 16, i * step
        if pos in (0, 8) or pos in kick_extra:
            truth.append(Onset(t, 0, float(rng.uniform(0.75, 1.0))))
        if pos in (4, 12):
            truth.append(Onset(t, 1, float(rng.uniform(0.75, 1.0))))
            if realistic and rng.random() < 0.25:
                flams.append(t)
        elif realistic and pos in (2, 7, 9, 15) and rng.random() < 0.2:
            truth.append(Onset(t, 1, float(rng.uniform(0.15, 0.3))))  # ghost note
        hat = {"8ths": pos % 2 == 0, "16ths": True, "offbeats": pos % 4 == 2}[hat_mode]
        if hat:
            accent = 0.85 if pos % 4 == 0 else 0.55
            truth.append(Onset(t, 2, float(np.clip(accent + rng.uniform(-0.15, 0.15), 0.2, 1.0))))
    return truth, flams


def _render(case: TakeCase, source: str, truth: list[Onset], flams: list[float], duration: float,
            rng: np.random.Generator) -> np.ndarray:
    """The dry take: every hit (flams as a soft grace stroke then the hit 15-30 ms later)."""
    sr = SAMPLE_RATE
    n = int(round(duration * sr))
    strokes: list[tuple[float, int, float]] = []
    flam_set = set(flams)
    for o in truth:
        if o.cls == 1 and o.time in flam_set:
            strokes.append((o.time, 1, 0.45 * o.strength))
            strokes.append((o.time + float(rng.uniform(0.015, 0.03)), 1, o.strength))
        else:
            strokes.append((o.time, o.cls, o.strength))
    if case.prompt_type == "synth":
        ons = [Onset(t, c, s) for t, c, s in strokes]
        if source in ("beatbox", "tap"):
            return synth_prompt(ons, duration, sr, source, case.seed).astype(np.float64)
        return voices.render_onsets(ons, duration, sr, source, rng).astype(np.float64)
    out = np.zeros(n, dtype=np.float64)
    vocal_pick = [int(rng.integers(0, 3)) for _ in range(3)]  # one syllable per class for the whole take
    speed, pitch = int(rng.integers(280, 380)), int(rng.integers(25, 75))
    for t, c, s in strokes:
        if case.prompt_type == "kit":
            shot = _kit_shot(source, c, s)
        elif case.prompt_type == "gm":
            vel = min(GM_VELOCITIES, key=lambda v: abs(v - 127 * s))
            shot = _gm_shots(source)[(GM_NOTES[c][0], vel)]
        else:
            shot = _espeak(source, SYLLABLES[c][vocal_pick[c]], speed, pitch)
        start = int(round(t * sr))
        if start >= n:
            continue
        end = min(n, start + shot.size)
        gain = CLASS_GAIN[c] * s * (float(rng.uniform(0.85, 1.0)) if case.prompt_type == "vocal" else 1.0)
        out[start:end] += gain * shot[: end - start]
    return out


def room_impulse(sr: int, rt60_s: float, drr_db: float, rng: np.random.Generator) -> np.ndarray:
    """A room: the direct path, six early reflections (2-25 ms) and an exponentially decaying,
    slightly darkened noise tail that falls 60 dB in `rt60_s`, at `drr_db` below the direct path."""
    n = int(rt60_s * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / rt60_s)
    tail = sosfilt(butter(1, 6000.0 / (sr / 2), output="sos"), tail)
    for d in rng.uniform(0.002, 0.025, size=6):
        tail[int(d * sr)] += rng.choice([-1.0, 1.0]) * rng.uniform(0.2, 0.5) * np.sqrt(np.sum(tail**2) / 10)
    tail[0] = 0.0
    tail *= np.sqrt(10 ** (-drr_db / 10.0) / np.sum(tail**2))
    tail[0] = 1.0
    return tail


def _mouth_noises(n: int, sr: int, rng: np.random.Generator, rms: float) -> np.ndarray:
    """Lip clicks (a few ms, high) and breaths (band noise, slow swell) between hits: not hits."""
    out = np.zeros(n)
    for _ in range(int(rng.integers(2, 6))):
        s = int(rng.integers(0, n - sr // 5))
        k = int(rng.integers(int(0.002 * sr), int(0.006 * sr)))
        click = rng.standard_normal(k) * np.hanning(k)
        out[s:s + k] += sosfilt(butter(2, 2000.0 / (sr / 2), btype="high", output="sos"), click) * rms * 1.5
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.uniform(0.25, 0.5) * sr)
        s = int(rng.integers(0, n - k))
        breath = sosfilt(butter(2, [500.0 / (sr / 2), 4000.0 / (sr / 2)], btype="band", output="sos"),
                         rng.standard_normal(k)) * np.hanning(k)
        out[s:s + k] += breath * rms * 0.8
    return out


def _source(case: TakeCase, rng: np.random.Generator) -> str:
    table = {"kit": HYDROGEN_KITS, "gm": GM_PROGRAMS, "vocal": ESPEAK_VOICES, "synth": SYNTH_FAMILIES}
    names = table[case.prompt_type][case.split]
    return str(names[int(rng.integers(0, len(names)))])


def build_take(case: TakeCase, *, bpm: float | None = None, source: str | None = None,
               warp: Callable[[np.ndarray], np.ndarray] | None = None) -> Take:
    """Render one case: deterministic for its seed.

    The keywords change one thing of the performance and leave every other draw of the seed as it
    was (the stress conditions of `darc_bridge.eval.stress`): `bpm` the tempo, `source` the sound
    source (e.g. an espeak voice of neither split), `warp` the player's timing (played time of
    each grid time, seconds to seconds: drift, swing). The mix stays on the steady grid."""
    if case.prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown prompt type {case.prompt_type!r}; choose from {PROMPT_TYPES}")
    realistic = case.tier == "realistic"
    rng = np.random.default_rng(case.seed)
    drawn_source = _source(case, rng)  # drawn even when overridden: the later draws stay the same
    source = drawn_source if source is None else source
    drawn_bpm = float(rng.uniform(80.0, 180.0 if realistic else 150.0))
    bpm = drawn_bpm if bpm is None else float(bpm)
    bar = 4 * 60.0 / bpm
    n_bars = max(2, int(np.ceil(TAKE_S / bar)))
    duration = n_bars * bar + 0.5
    truth, flams = _pattern(rng, bpm, n_bars, realistic)
    late = float(rng.uniform(0.0, 0.04)) if realistic else 0.0
    if warp is not None:
        played = warp(np.array([o.time for o in truth] + flams, dtype=float))
        truth, flams = ([Onset(float(t), o.cls, o.strength) for o, t in zip(truth, played, strict=False)],
                        [float(t) for t in played[len(truth):]])
        duration = max(duration, max(o.time for o in truth) + 0.5)
    truth = [Onset(round(o.time + late, 5), o.cls, round(o.strength, 3)) for o in truth]
    flams = [round(t + late, 5) for t in flams]
    sr = SAMPLE_RATE
    x = _render(case, source, truth, flams, duration, rng)
    mix, _, _ = synth_drumless_mix(duration, bpm=bpm, sample_rate=sr, seed=case.seed % 100000)
    grid = np.arange(0.0, duration, 60.0 / bpm / 4.0)
    details: dict = {"late_s": late, "flams": len(flams)}
    room = None
    if realistic:
        room_names = ROOMS[case.split]
        room = str(room_names[int(rng.integers(0, len(room_names)))])
        rt60, drr = ROOM_SHAPES[room]
        rt60 = float(np.clip(rt60 * rng.uniform(0.9, 1.1), 0.3, 0.8))
        x = fftconvolve(x, room_impulse(sr, rt60, drr, rng))[: x.size]
        rms = float(np.sqrt(np.mean(x**2))) + 1e-12
        if case.prompt_type in ("vocal", "synth"):
            x = x + _mouth_noises(x.size, sr, rng, rms)
        bleed_db = float(rng.uniform(12.0, 24.0))
        m = mix.mean(axis=0).astype(np.float64)
        x = x + m / (np.sqrt(np.mean(m**2)) + 1e-12) * rms * 10 ** (-bleed_db / 20.0)
        t = np.arange(x.size) / sr
        if rng.random() < 0.5:
            hz = float(rng.choice([50.0, 60.0]))
            hum = sum(np.sin(2 * np.pi * hz * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3))
        else:
            hum = sosfilt(butter(2, 40.0 / (sr / 2), output="sos"), rng.standard_normal(x.size))
        hum = hum / (np.sqrt(np.mean(hum**2)) + 1e-12) * rms * 10 ** (-float(rng.uniform(10.0, 20.0)) / 20.0)
        snr = float(rng.uniform(6.0, 25.0))
        x = add_noise(x + hum, snr, seed=case.seed, color=str(rng.choice(["white", "pink"]))).astype(np.float64)
        details.update(rt60_s=rt60, snr_db=snr, bleed_db=bleed_db)
    peak = float(np.max(np.abs(x))) or 1.0
    x = (x * (0.9 / peak)).astype(np.float32)
    return Take(case, x, sr, sorted(truth, key=lambda o: (o.time, o.cls)), bpm, mix, grid, source, room, details)
