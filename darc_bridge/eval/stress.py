"""Stress takes: what musicians record that neither split of `darc_bridge.eval.takes` covers.

Why: the extractor was tuned on the `tune` split and is reported on `held_out`, but both splits draw
from one recipe (dry or roomy takes at 80-180 BPM on a steady 16th grid, espeak voices en/de/es/
fr/it/nl/pt, kick/snare/hat sounds). A user beatboxes along with the song on a laptop, on a phone,
drifts and swings, speaks another language, taps a pen. Each condition here takes the same clean
cases of one split (held-out for reports; tune, with voices and sounds of its own, for choices
such as a retrain of the onset model) and changes one thing, so its gap to `control` is what that
one thing costs:

- `bed -12 dB`, `bed -6 dB`: the song (the take's own drumless mix, through a laptop speaker: no
  bass) heard in the prompt, its RMS 12 or 6 dB below the take's (the realistic tier's bleed is
  12-24 dB down);
- `phone 8k`, `laptop 16k`: mic self-noise, the band of a phone call (300-3400 Hz, 8 kHz) or a
  laptop mic (100-7000 Hz, 16 kHz), an AGC that pumps (fast attack, slow release), OGG/Vorbis at
  libsndfile's lowest quality;
- `drift 5%`: the player's tempo wanders between 0.95x and 1.05x the song's over the take;
  `swing`: triplet-swung 8ths; `60 BPM`, `180 BPM`: tempos at and past the splits' edges;
- `new voices`: vocal takes spoken by espeak-ng voices whose language and variant neither split
  uses (`STRESS_VOICES`, a set of its own per split);
- `one sound`: every hit one sound: pieces the split's kits' takes never play (held out: rim
  click, cowbell, agogo, stick, a tom) and a sox-made pen and table tap; scored on onsets only;
- `quiet 6 dB SNR`: the take at -45 dBFS peak under pink noise at 6 dB SNR, 16-bit;
- `clipped`: the take recorded 15 dB too hot, hard-clipped.

Public API: `CONDITIONS`, `stress_cases(seed, n, split)`, `build_stress_take(condition, case)`,
`mic_chain`; the rhythm benchmark scores them (`python -m darc_bridge.bench.rhythm --stress`,
held-out only; `bench.rhythm.evaluate_stress(..., split="tune")` for decisions).
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
from scipy.signal import butter, sosfilt

from darc_bridge.audio.prompts import add_noise
from darc_bridge.errors import InputError
from darc_bridge.eval.takes import (
    PROMPT_TYPES,
    Take,
    TakeCase,
    _hydrogen_kits,
    _read_shot,
    build_take,
    take_cases,
)
from darc_bridge.kits import read_drumkit
from darc_bridge.kits.splits import Split
from darc_bridge.rhythm.features import Onset

CONDITIONS = ("control", "bed -12 dB", "bed -6 dB", "phone 8k", "laptop 16k", "drift 5%", "swing",
              "60 BPM", "180 BPM", "new voices", "one sound", "quiet 6 dB SNR", "clipped")
# Languages and variants in neither split (splits.ESPEAK_VOICES: en, en-us, de, es, fr, it, nl, pt;
# variants m1-m5, f1-f4), the two sets disjoint in both; each speaks every syllable of
# takes.SYLLABLES in under 0.35 s. Tune stress takes never hear the held-out set.
STRESS_VOICES: dict[Split, tuple[str, ...]] = {
    "held_out": ("ru+m6", "pl+f5", "sv+m7", "hi+klatt", "tr+croak", "cs+whisper", "el+m8", "fi+Andy"),
    "tune": ("uk+klatt2", "hu+whisperf", "sk+steph", "bg+Alex", "ca+edward", "da+klatt4", "hr+Gene", "mk+norbert"),
}
# (kit of the split, instrument) the split's takes never play (takes._kit_layers picks other instruments).
ONE_SOUNDS: dict[Split, tuple[tuple[str, str], ...]] = {
    "held_out": (("Forzee Stereo Drumkit", "Rim Click (Pearl Free Floating Maple 14x3.5)"),
                 ("The Black Pearl 1.0", "Cowbell"), ("Forzee Stereo Drumkit", "Agogo High (Pearl ECB-23)"),
                 ("Audiophob", "Cowbell"), ("Forzee Stereo Drumkit", "Stick"), ("VariBreaks", "VariBreaks Tom Hi"),
                 ("sox", "pen"), ("sox", "table")),
    "tune": (("Millo_MultiLayered2", "Stick"), ("Millo-Drums_v.1", "Cowbell"), ("ColomboAcousticDrumkit", "ride-cup"),
             ("rumpf_kit_z01_gm", "g#4 - cowbell"), ("ElectricEmpireKit", "Click"), ("Millo_MultiLayered3", "Tom Hi"),
             ("sox", "pen"), ("sox", "table")),
}
# sox recipes: a pen tip on a desk (a short bright tick), a knuckle on a table (a dull thud).
SOX_TAPS = {"pen": ["synth", "0.03", "whitenoise", "highpass", "2500", "lowpass", "7000",
                    "fade", "h", "0.0005", "0.03", "0.028"],
            "table": ["synth", "0.12", "brownnoise", "lowpass", "700", "highpass", "90",
                      "fade", "p", "0.001", "0.12", "0.11"]}
# (band in Hz, rate): a phone call's narrowband (G.711/AMR-NB) and a laptop's wideband voice path (G.722, AMR-WB, Opus VoIP).
MICS = {"phone 8k": ((300.0, 3400.0), 8000), "laptop 16k": ((100.0, 7000.0), 16000)}
MIC_SNR_DB = 40.0  # a phone or laptop mic's self-noise under the take, which the AGC lifts between hits
CLIP_DB = 15.0  # how much too hot the clipped take is recorded: most hits are flattened
QUIET_PEAK_DBFS = -45.0  # a take whispered far from the mic: 25 dB under a normal take's peak


def stress_cases(seed: int, n: int, split: Split = "held_out") -> list[TakeCase]:
    """`n` clean cases of `split`, prompt types in turn (kit, gm, vocal, synth, kit, ...)."""
    if n < 1:
        raise ValueError(f"need at least one take per condition, got {n}")
    per_type = -(-n // len(PROMPT_TYPES))
    cases = take_cases(seed, split, per_type, tiers=("clean",))
    by_type = [cases[i * per_type:(i + 1) * per_type] for i in range(len(PROMPT_TYPES))]
    return [by_type[i % len(PROMPT_TYPES)][i // len(PROMPT_TYPES)] for i in range(n)]


def drift_warp(duration: float, phase: float, depth: float = 0.05):
    """Played time of each grid time when the tempo runs at 1 + depth * sin(2 pi t / duration + phase)
    times the song's: one slow wander over the take, starting on time."""
    t = np.linspace(0.0, duration + 2.0, 4096)
    rate = 1.0 + depth * np.sin(2 * np.pi * t / duration + phase)
    played = np.concatenate([[0.0], np.cumsum(np.diff(t) / rate[:-1])])  # a faster player arrives sooner
    return lambda times: np.interp(times, t, played)


def swing_warp(bpm: float, ratio: float = 2.0 / 3.0):
    """Triplet swing: the second 8th of each beat lands at `ratio` of the beat (16ths in between follow)."""
    beat = 60.0 / bpm

    def warp(times: np.ndarray) -> np.ndarray:
        k, frac = np.divmod(np.asarray(times, dtype=float) / beat, 1.0)
        swung = np.where(frac < 0.5, frac * 2 * ratio, ratio + (frac - 0.5) * 2 * (1 - ratio))
        return (k + swung) * beat
    return warp


def agc(x: np.ndarray, sr: int, target_dbfs: float = -20.0, max_gain_db: float = 24.0,
        attack_s: float = 0.005, release_s: float = 0.5) -> np.ndarray:
    """A phone-style automatic gain control: a 1 ms level follower (fast attack, slow release) sets the
    gain toward `target_dbfs`, at most `max_gain_db` up. After a loud hit the gain drops at once and
    recovers over `release_s`: the next soft hits are ducked and the noise between hits swells."""
    block = max(1, sr // 1000)
    n = x.size // block
    level = np.sqrt(np.mean(x[: n * block].reshape(n, block) ** 2, axis=1)) + 1e-9
    att, rel = np.exp(-1.0 / (attack_s * 1000.0)), np.exp(-1.0 / (release_s * 1000.0))
    env = np.empty(n)
    e = float(level[0])
    for i, v in enumerate(level):
        c = att if v > e else rel
        e = c * e + (1 - c) * v
        env[i] = e
    gain_db = np.minimum(target_dbfs - 20 * np.log10(env), max_gain_db)
    gain = np.interp(np.arange(x.size), (np.arange(n) + 0.5) * block, 10 ** (gain_db / 20.0))
    return np.clip(x * gain, -1.0, 1.0)


def ogg_roundtrip(x: np.ndarray, sr: int, level: float = 1.0, subtype: str = "VORBIS") -> np.ndarray:
    """Through OGG (`subtype` VORBIS or OPUS) at libsndfile compression `level` (1: its lowest
    quality) and back, in memory, at the same length. The stress chain uses Vorbis at level 1, the
    harshest setting on purpose: at level 0.8 the extractor lost nothing (docs/rhythm.md)."""
    buf = io.BytesIO()
    sf.write(buf, np.asarray(x, dtype=np.float32), sr, format="OGG", subtype=subtype, compression_level=level)
    buf.seek(0)
    y, _ = sf.read(buf, dtype="float32")
    return y[: x.size] if y.size >= x.size else np.pad(y, (0, x.size - y.size))


def mic_chain(x: np.ndarray, sr: int, band_hz: tuple[float, float], out_sr: int, seed: int, *,
              pump: bool = True, level: float = 1.0, subtype: str = "VORBIS") -> np.ndarray:
    """A phone or laptop mic: self-noise, its band, AGC (`pump`), its rate, a lossy codec (`level`,
    `subtype` as in `ogg_roundtrip`). The onset model's training draws these (rhythm.onset_model)."""
    y = add_noise(x, MIC_SNR_DB, seed=seed, color="pink").astype(np.float64)
    y = sosfilt(butter(4, [band_hz[0] / (sr / 2), band_hz[1] / (sr / 2)], btype="band", output="sos"), y)
    if pump:
        y = agc(y, sr)
    y = librosa.resample(y, orig_sr=sr, target_sr=out_sr, res_type="soxr_hq")
    return ogg_roundtrip(y, out_sr, level, subtype)


def with_bed(take: Take, rel_db: float) -> np.ndarray:
    """The take with its song audible: the mix through a laptop speaker (no bass below 150 Hz) at
    `rel_db` RMS against the take's."""
    x = take.audio.astype(np.float64)
    m = take.mix.mean(axis=0).astype(np.float64)[: x.size]
    m = np.pad(m, (0, x.size - m.size))
    m = sosfilt(butter(2, 150.0 / (take.sample_rate / 2), btype="high", output="sos"), m)
    rms = lambda v: float(np.sqrt(np.mean(v**2))) + 1e-12  # noqa: E731
    return x + m * (rms(x) / rms(m)) * 10 ** (rel_db / 20.0)


@functools.lru_cache(maxsize=8)
def _sox_tap(name: str, sr: int) -> np.ndarray:
    exe = shutil.which("sox")
    if exe is None:
        raise InputError("the pen and table taps need sox (Debian: apt install sox)")
    with tempfile.TemporaryDirectory(prefix="darc-sox-") as tmp:
        wav = Path(tmp) / "tap.wav"
        run = subprocess.run([exe, "-R", "-n", "-r", str(sr), "-c", "1", "-b", "16", str(wav), *SOX_TAPS[name]],
                             capture_output=True, text=True, timeout=30)
        if run.returncode != 0:
            raise InputError(f"sox could not make the {name} tap: {run.stderr.strip()[-200:]}")
        x, _ = sf.read(wav, dtype="float32")
    return (x / (np.max(np.abs(x)) + 1e-12)).astype(np.float32)


def _one_sound_shots(kit: str, instrument: str, sr: int) -> list[tuple[np.ndarray, float, float]]:
    """(shot, min velocity, max velocity) layers of one sound."""
    if kit == "sox":
        return [(_sox_tap(instrument, sr), 0.0, 1.0)]
    path = _hydrogen_kits().get(kit)
    if path is None:
        raise InputError(f"Hydrogen kit {kit!r} is not installed (Debian: apt install hydrogen-drumkits)")
    inst = next((i for i in read_drumkit(path).instruments if i.name == instrument and i.layers), None)
    if inst is None:
        raise InputError(f"Hydrogen kit {kit!r} has no instrument {instrument!r}")
    return [(_read_shot(str(la.path)), la.min_velocity, la.max_velocity) for la in inst.layers]


def one_sound_take(case: TakeCase, index: int) -> Take:
    """The case's rhythm (each distinct hit time once, at its strongest) played with one sound."""
    base = build_take(replace(case, prompt_type="kit"))
    sounds = ONE_SOUNDS[case.split]
    kit, instrument = sounds[index % len(sounds)]
    layers = _one_sound_shots(kit, instrument, base.sample_rate)
    hits: dict[float, float] = {}
    for o in base.truth:
        hits[o.time] = max(hits.get(o.time, 0.0), o.strength)
    x = np.zeros(base.audio.size, dtype=np.float64)
    for t, s in hits.items():
        shot = next((sh for sh, lo, hi in layers if lo <= s <= hi), layers[-1][0])
        start = int(round(t * base.sample_rate))
        end = min(x.size, start + shot.size)
        x[start:end] += s * shot[: end - start]
    x *= 0.9 / (np.max(np.abs(x)) + 1e-12)
    truth = [Onset(t, 1, s) for t, s in sorted(hits.items())]
    return replace(base, audio=x.astype(np.float32), truth=truth, source=f"{kit}: {instrument}")


def build_stress_take(condition: str, case: TakeCase, index: int = 0) -> Take:
    """The case under `condition` (deterministic; `index` picks the voice or sound in turn)."""
    if condition not in CONDITIONS:
        raise ValueError(f"unknown stress condition {condition!r}; choose from {CONDITIONS}")
    if condition == "one sound":
        take = one_sound_take(case, index)
    elif condition == "new voices":
        voices = STRESS_VOICES[case.split]
        take = build_take(replace(case, prompt_type="vocal"), source=voices[index % len(voices)])
    elif condition in ("60 BPM", "180 BPM"):
        take = build_take(case, bpm=float(condition.split()[0]))
    elif condition in ("swing", "drift 5%"):
        base = build_take(case)
        phase = float(np.random.default_rng(case.seed).uniform(0.0, 2 * np.pi))
        warp = (swing_warp(base.bpm) if condition == "swing"
                else drift_warp(base.audio.size / base.sample_rate, phase))
        take = build_take(case, warp=warp)
    else:
        base = build_take(case)
        take = replace(base, **_degrade(condition, base, case.seed))
    return replace(take, details={**take.details, "condition": condition})


def _degrade(condition: str, take: Take, seed: int) -> dict:
    """New audio (and rate) of a take for the conditions that change only the recording."""
    x = take.audio.astype(np.float64)
    sr = take.sample_rate
    if condition == "control":
        y = x
    elif condition.startswith("bed"):
        y = with_bed(take, float(condition.split()[1]))
    elif condition in ("phone 8k", "laptop 16k"):
        band, sr = MICS[condition]
        y = mic_chain(x, take.sample_rate, band, sr, seed)
    elif condition == "quiet 6 dB SNR":
        y = add_noise(x * 10 ** (QUIET_PEAK_DBFS / 20.0) / np.max(np.abs(x)), 6.0, seed=seed, color="pink")
        y = np.round(np.asarray(y, dtype=np.float64) * 32767.0) / 32767.0
    else:  # clipped
        y = np.clip(x / np.max(np.abs(x)) * 10 ** (CLIP_DB / 20.0), -1.0, 1.0)
    return {"audio": np.asarray(y, dtype=np.float32), "sample_rate": sr}
