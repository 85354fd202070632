"""Training songs and gate cases whose drums are recorded kits playing varied grooves.

A song: a drumless piece at the groove's tempo and meter (audio/music.synth_drumless_mix, written
as `other.wav`), drums (`drums.wav`) and `onsets.json` (three-class onsets for the rhythm prompt,
plus every hit's kit piece and velocity). Drums come mostly from the `tune` Hydrogen kits of a
sample pack (data/kit_pack.py), and otherwise from the kit engine's built-in kit and the
`acoustic` / `electro` voice families, so the model meets synthetic timbres too. Augmentation per
song: pitch (the kit's one-shots resampled), per-piece gain, level and a synthetic room; the
cache adds speed and context pitch (data/augment.py).

Gate cases (`write_gate_set`) use `held_out` kits only, prompts from every voice family, clean and
noisy, and grooves with syncopation, rests and fills: a system that ignores the prompt scores low.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from darc_bridge.audio.io import atomic_write, write_wav_atomic
from darc_bridge.data.grooves import FEELS, Groove, Hit, make_groove
from darc_bridge.data.kit_pack import PackKit, SamplePack, check_training_kits
from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import CLASS_NAMES

log = logging.getLogger(__name__)

# Drum timbres of training songs and their odds: recorded kits first, synthetic ones for variety.
TIMBRES = (("hydrogen", 0.7), ("builtin", 0.1), ("acoustic", 0.1), ("electro", 0.1))
# Prompt renderings of the gate: the two prompt voices (audio/prompts.py) and three voice families
# (data/voices.py); every family is used, none is ever a kit's sound.
GATE_VOICES = ("beatbox", "tap", "noise", "click", "voice")
VOICE_CLASS = {"kick": 0, "snare": 1, "clap": 1, "tom": 1, "hat": 2, "open_hat": 3, "crash": 3, "ride": 3}


@dataclass(frozen=True)
class DrumAugment:
    """Per-song drum augmentation ranges."""

    pitch_semitones: float = 2.0  # one-shots resampled by up to this much, up or down (p = pitch_prob)
    pitch_prob: float = 0.5
    piece_gain_db: float = 4.0  # each piece louder or softer by up to this
    level_db: tuple[float, float] = (-9.0, 0.0)
    room_prob: float = 0.5
    room_rt60_s: tuple[float, float] = (0.15, 0.8)
    room_wet: tuple[float, float] = (0.05, 0.3)


NO_AUGMENT = DrumAugment(pitch_prob=0.0, piece_gain_db=0.0, level_db=(0.0, 0.0), room_prob=0.0)


def _resample_shot(x: np.ndarray, semitones: float) -> np.ndarray:
    """Play a one-shot higher or lower (and shorter or longer), as a sampler's pitch knob does."""
    if semitones == 0.0:
        return x
    ratio = 2 ** (semitones / 12.0)
    pos = np.arange(0, x.size - 1, ratio)
    return np.interp(pos, np.arange(x.size), x).astype(np.float32)


def room(x: np.ndarray, sample_rate: int, rng: np.random.Generator, settings: DrumAugment) -> np.ndarray:
    """A synthetic room: exponentially decaying, darkened noise as the impulse response."""
    rt60 = float(rng.uniform(*settings.room_rt60_s))
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    ir = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60)
    ir = sosfilt(butter(2, min(0.99, 7000 / (sample_rate / 2)), output="sos"), ir)
    ir /= np.sqrt(np.sum(ir ** 2)) + 1e-9
    wet = fftconvolve(x, ir)[: x.size]
    mix = float(rng.uniform(*settings.room_wet))
    return ((1 - mix) * x + mix * wet).astype(np.float32)


def render_kit(hits: list[Hit], duration: float, sample_rate: int, kit: PackKit, rng: np.random.Generator,
               settings: DrumAugment = NO_AUGMENT) -> np.ndarray:
    """Mono drums: each hit plays the velocity layer of the kit's instrument for its piece.

    One instrument per piece for the whole song (a drummer's kit), except toms, which step down
    through the kit's toms in a fill. Pieces the kit lacks fall back to a close one (clap->snare,
    ride->hat, crash->open hat, tom->snare)."""
    n = int(round(duration * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    fallback = {"clap": "snare", "ride": "hat", "crash": "open_hat", "open_hat": "hat", "tom": "snare"}
    semis = float(rng.uniform(-settings.pitch_semitones, settings.pitch_semitones)) \
        if rng.random() < settings.pitch_prob else 0.0
    gains = {p: 10 ** (rng.uniform(-settings.piece_gain_db, settings.piece_gain_db) / 20) for p in VOICE_CLASS}
    instrument = {p: int(rng.integers(len(v))) for p, v in kit.pieces.items()}
    cache: dict[tuple[str, int, int], np.ndarray] = {}
    tom_i = 0
    for h in hits:
        piece = h.piece
        while piece not in kit.pieces:
            piece = fallback.get(piece, "snare")
        start = int(round(h.time * sample_rate))
        if not 0 <= start < n:
            continue
        inst = instrument[piece]
        if piece == "tom":
            inst, tom_i = tom_i, tom_i + 1
        layers = kit.pieces[piece][inst % len(kit.pieces[piece])]
        li = min(range(len(layers)), key=lambda i: abs(layers[i].velocity - h.velocity))
        key = (piece, inst % len(kit.pieces[piece]), li)
        if key not in cache:
            cache[key] = _resample_shot(layers[li].audio, semis)
        shot = cache[key]
        end = min(n, start + shot.size)
        # a layer has its own loudness; within a layer velocity scales the level, as samplers do
        out[start:end] += gains[h.piece] * (0.3 + 0.7 * h.velocity) * shot[: end - start]
    return _finish(out, sample_rate, rng, settings)


def _finish(x: np.ndarray, sample_rate: int, rng: np.random.Generator, settings: DrumAugment) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if rng.random() < settings.room_prob:
        x = room(x, sample_rate, rng, settings)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    level = 10 ** (rng.uniform(*settings.level_db) / 20)
    return (x * (0.9 * level / peak) if peak > 0 else x).astype(np.float32)


def render_synthetic(hits: list[Hit], duration: float, sample_rate: int, timbre: str, rng: np.random.Generator,
                     settings: DrumAugment = NO_AUGMENT) -> np.ndarray:
    """The kit engine's built-in kit ("builtin") or a voice family ("acoustic", "electro")."""
    from darc_bridge.rhythm.features import Onset

    if timbre == "builtin":
        from darc_bridge.audio.music import synth_drum_stem

        onsets = [Onset(h.time, CLASS_NAMES.index(h.piece), h.velocity) for h in hits]
        x = synth_drum_stem(onsets, duration, sample_rate).mean(axis=0)
    else:
        from darc_bridge.data.voices import render_onsets

        x = render_onsets([Onset(h.time, VOICE_CLASS[h.piece], h.velocity) for h in hits], duration, sample_rate,
                          family=timbre, rng=rng)
    return _finish(x, sample_rate, rng, settings)


def _music(groove: Groove, duration: float, sample_rate: int, seed: int) -> np.ndarray:
    from darc_bridge.audio.music import synth_drumless_mix

    mix, _, _ = synth_drumless_mix(duration, bpm=groove.tempo, sample_rate=sample_rate, seed=seed,
                                   beats_per_bar=groove.beats_per_bar)
    return mix.mean(axis=0).astype(np.float32)


def _truth(groove: Groove, **extra) -> dict:
    return {"tempo": round(groove.tempo, 4), "beats": [round(float(b), 5) for b in groove.beats],
            "downbeats": [round(float(b), 5) for b in groove.downbeats], "beats_per_bar": groove.beats_per_bar,
            "feel": groove.feel, "onsets": [o.to_dict() for o in groove.onsets()],
            "hits": [{"time": round(h.time, 5), "piece": h.piece, "velocity": round(h.velocity, 3)}
                     for h in groove.hits], **extra}


def kit_song(seed: int, pack: SamplePack, duration: float = 20.0, augment: DrumAugment = DrumAugment(),
             kits: list[PackKit] | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """One training song: stems {"other", "drums"} (mono float32 at the pack's rate) and its truth."""
    kits = pack.split("tune") if kits is None else kits
    check_training_kits(kits)
    rng = np.random.default_rng([seed, 7])
    sr = pack.sample_rate
    groove = make_groove(rng, duration)
    names, weights = zip(*TIMBRES, strict=True)
    w = np.array(weights) if kits else np.array([0.0, *weights[1:]])
    timbre = str(rng.choice(names, p=w / w.sum()))
    if timbre == "hydrogen":
        kit = kits[int(rng.integers(len(kits)))]
        drums, kit_name = render_kit(groove.hits, duration, sr, kit, rng, augment), kit.name
    else:
        drums, kit_name = render_synthetic(groove.hits, duration, sr, timbre, rng, augment), timbre
    music = _music(groove, duration, sr, seed)
    return {"other": music, "drums": drums}, _truth(groove, kit=kit_name, timbre=timbre, sample_rate=sr)


def write_kit_corpus(out: str | Path, songs: int, pack: SamplePack, duration: float = 20.0, seed: int = 0,
                     augment: DrumAugment = DrumAugment(), progress=None) -> list[Path]:
    """Write `songs` songs as out/song_00000/{other,drums}.wav + onsets.json; complete songs are kept."""
    from darc_bridge.data.synth_corpus import write_songs

    def write_one(i: int, folder: Path) -> None:
        stems, truth = kit_song(seed * 1_000_003 + i, pack, duration, augment)
        folder.mkdir(exist_ok=True)
        for name, x in stems.items():
            write_wav_atomic(folder / f"{name}.wav", x[None, :], pack.sample_rate)
        atomic_write(folder / "onsets.json", lambda tmp: Path(tmp).write_text(json.dumps(truth)))

    return write_songs(out, songs, write_one, progress=progress)


def write_gate_set(out: str | Path, pack: SamplePack, cases: int = 32, duration: float = 10.0,
                   seed: int = 5000, split: str = "held_out") -> list[Path]:
    """The eval gate's cases (eval/runner.py format) from the pack's held-out kits only.

    `split="tune"` builds a validation set the same way from the kits training uses (with another
    seed than the training songs'): settings are chosen on it, so the gate's kits stay unseen
    (train/guidance.py)."""
    from darc_bridge.audio.prompts import add_noise, synth_prompt
    from darc_bridge.data.voices import render_onsets

    if split not in ("held_out", "tune"):
        raise InputError(f"unknown kit split {split!r}; splits: held_out, tune")
    kits = pack.split(split)
    if not kits:
        raise InputError("the sample pack holds no held-out kit: the gate needs kits never trained on"
                         if split == "held_out" else "the sample pack holds no tune kit")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    sr = pack.sample_rate
    feels = ("funk", "breakbeat", "half_time", "shuffle", "rock", "four_floor")
    folders = []
    for i in range(cases):
        folder = root / f"case_{i:03d}"
        folders.append(folder)
        if (folder / "case.json").exists():
            continue
        rng = np.random.default_rng([seed, i])
        kit = kits[i % len(kits)]
        voice = GATE_VOICES[i % len(GATE_VOICES)]
        noisy = (i // len(GATE_VOICES)) % 2 == 1
        groove = make_groove(rng, duration, feel=feels[i % len(feels)], fills=True, rests=True)
        onsets = groove.onsets()
        if voice in ("beatbox", "tap"):
            prompt = synth_prompt(onsets, duration, sr, voice=voice, seed=seed + i)
        else:
            prompt = render_onsets(onsets, duration, sr, family=voice, rng=rng)
        snr = float(rng.uniform(10.0, 20.0)) if noisy else None
        if snr is not None:
            prompt = add_noise(prompt, snr, seed=seed + i)
        drums = render_kit(groove.hits, duration, sr, kit, rng)
        mix = _music(groove, duration, sr, seed + i)
        folder.mkdir(exist_ok=True)
        write_wav_atomic(folder / "mix.wav", mix[None, :], sr)
        write_wav_atomic(folder / "prompt.wav", np.clip(prompt, -1, 1)[None, :].astype(np.float32), sr)
        write_wav_atomic(folder / "drums.wav", drums[None, :], sr)
        truth = _truth(groove, kit=kit.name, prompt_voice=voice, noise_snr_db=snr)
        truth["prompt_onsets"] = truth.pop("onsets")
        atomic_write(folder / "case.json", lambda tmp, t=truth: Path(tmp).write_text(json.dumps(t, indent=1)))
    log.info("%s set: %d cases from %s kits %s in %s", "gate" if split == "held_out" else "validation", cases,
             split.replace("_", "-"), ", ".join(k.name for k in kits), root)
    return folders


__all__ = ["FEELS", "DrumAugment", "kit_song", "render_kit", "write_gate_set", "write_kit_corpus"]
