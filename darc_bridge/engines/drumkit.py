"""Drum sounds for the kit engine: a kit synthesised in code (no files, no weights) or a folder of
the user's samples, and the renderer that places hits with numpy slice-adds.

Rhythm class i plays piece PIECES[i] (the same order as GM_NOTES and CLASS_NAMES in
rhythm/features.py): 0 kick, 1 snare, 2 closed hat, 3 open hat, 4 tom, 5 crash, 6 ride, 7 clap.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf

from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import CLASS_NAMES, Onset

log = logging.getLogger(__name__)

PIECES = CLASS_NAMES  # ("kick", "snare", "hat", "open_hat", "tom", "crash", "ride", "clap")

# A missing piece in a user kit borrows the nearest one the folder has; the built-in piece is the last resort.
FALLBACKS = {
    "kick": ("tom",),
    "snare": ("clap",),
    "hat": ("ride", "open_hat"),
    "open_hat": ("hat", "crash"),
    "tom": ("kick",),
    "crash": ("open_hat", "ride"),
    "ride": ("hat",),
    "clap": ("snare",),
}

# File name prefixes (lower case) per piece; open hats are checked before closed ones.
NAME_PREFIXES = (
    ("open_hat", ("open", "oh", "ohh", "hh_open", "hihat_open", "hat_open")),
    ("hat", ("hat", "hh", "hihat", "hi-hat", "closed", "chh", "ch_")),
    ("kick", ("kick", "bd", "bassdrum")),
    ("snare", ("snare", "sd")),
    ("tom", ("tom",)),
    ("crash", ("crash", "cymbal")),
    ("ride", ("ride",)),
    ("clap", ("clap", "cp")),
)
AUDIO_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")
MAX_SAMPLE_S = 4.0  # longer one-shots are cut (with a fade) to bound memory and render time
TAIL_DBFS = -60.0  # a one-shot must end this far below its peak, or its cut-off clicks
TAIL_FADE_S = 0.05  # fade for tails that end louder: short enough to keep the sound, long enough not to click
CEILING_DBFS = -1.0
MASTER_GAIN = 0.6  # built-in pieces peak near 1; typical grooves then stay below the ceiling


@dataclass
class VelocityLayer:
    """The samples a piece plays for hit strengths in [lo, hi] (0..1); several are alternated."""

    lo: float
    hi: float
    samples: list[np.ndarray]


@dataclass
class DrumKit:
    """One-shots per piece, each (2, n) float32 at `sample_rate`; several per piece are alternated.

    Recorded kits (Hydrogen, SFZ, SoundFont) also have `layers`: per piece, velocity layers sorted by
    strength; `sounds` then holds each piece's loudest layer (for callers that know no velocity)."""

    name: str
    sample_rate: int
    sounds: dict[str, list[np.ndarray]] = field(default_factory=dict)
    layers: dict[str, list[VelocityLayer]] = field(default_factory=dict)

    def pieces(self) -> list[str]:
        return [p for p in PIECES if self.sounds.get(p) or self.layers.get(p)]

    def sound_for(self, cls: int) -> list[np.ndarray]:
        """The samples a rhythm class plays: its own piece, else a fallback, else the built-in piece."""
        piece = PIECES[min(max(int(cls), 0), len(PIECES) - 1)]
        for name in (piece, *FALLBACKS[piece]):
            if self.sounds.get(name):
                return self.sounds[name]
        return builtin_kit(self.sample_rate).sounds[piece]

    def layer_for(self, cls: int, strength: float) -> tuple[tuple[str, int], list[np.ndarray]]:
        """The samples a hit of class `cls` and `strength` plays, and a key naming that layer (for
        round-robin counters): the velocity layer holding the strength (else the nearest one) of the
        class's piece or its fallback; kits without layers play `sound_for`."""
        piece = PIECES[min(max(int(cls), 0), len(PIECES) - 1)]
        for name in (piece, *FALLBACKS[piece]):
            if self.layers.get(name):
                layers = self.layers[name]
                s = float(np.clip(strength, 0.0, 1.0))
                i = min(range(len(layers)), key=lambda k: (max(layers[k].lo - s, s - layers[k].hi, 0.0), -k))
                return (name, i), layers[i].samples
            if self.sounds.get(name):
                return (name, 0), self.sounds[name]
        return (piece, -1), builtin_kit(self.sample_rate).sounds[piece]


# ---------------------------------------------------------------- built-in synthesised kit


def _noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n)


def _filtered(x: np.ndarray, sample_rate: int, kind: str, cutoff: float | tuple[float, float]) -> np.ndarray:
    """Butterworth filter with cutoffs clamped below Nyquist so every sample rate works."""
    nyq = sample_rate / 2.0
    if isinstance(cutoff, tuple):
        wn: float | list[float] = [min(c, 0.9 * nyq) / nyq for c in cutoff]
    else:
        wn = min(cutoff, 0.9 * nyq) / nyq
    sos = scipy.signal.butter(4, wn, btype=kind, output="sos")
    return scipy.signal.sosfilt(sos, x)


def _env(n: int, sample_rate: int, decay_s: float, attack_s: float = 0.001) -> np.ndarray:
    k = np.arange(n)
    return np.exp(-k / (decay_s * sample_rate)) * np.minimum(1.0, k / max(attack_s * sample_rate, 1.0))


def _sweep(n: int, sample_rate: int, f_start: float, f_end: float, sweep_s: float) -> np.ndarray:
    """Sine whose pitch falls exponentially from f_start to f_end (the body of kicks and toms)."""
    t = np.arange(n) / sample_rate
    freq = f_end + (f_start - f_end) * np.exp(-t / sweep_s)
    return np.sin(2.0 * np.pi * np.cumsum(freq) / sample_rate)


def _metal(n: int, sample_rate: int) -> np.ndarray:
    """Six detuned square waves (the classic analogue cymbal recipe), high-passed."""
    t = np.arange(n) / sample_rate
    x = sum(np.sign(np.sin(2.0 * np.pi * f * t)) for f in (205.3, 304.4, 369.6, 522.7, 540.0, 800.0))
    return _filtered(np.asarray(x, dtype=np.float64), sample_rate, "highpass", 6000.0)


def _stereo(x: np.ndarray, pan: float = 0.0, peak: float = 1.0) -> np.ndarray:
    """Mono -> (2, n) float32 whose louder channel peaks at `peak`; pan in -1 (left) .. 1 (right)."""
    m = float(np.max(np.abs(x))) or 1.0
    angle = (pan + 1.0) * np.pi / 4.0
    gains = np.array([np.cos(angle), np.sin(angle)])
    gains /= gains.max()
    return (gains[:, None] * x[None, :] * (peak / m)).astype(np.float32)


DECAY_TO_SILENCE = np.log(1000.0)  # decay time constants until an exponential envelope is down 60 dB
END_FADE_SHARE = 0.1  # a raised-cosine fade over the last tenth: the noisy pieces' peaks (crest
# factor ~4) sit 12 dB above their envelope, so the envelope alone would not keep the end below -60 dB


CYMBAL_DECAY_S = 0.27  # crash and ride ring out (-60 dB) within 1.9 s, under the kit's 2 s one-shot bound


def _ring_out(decay_s: float, sample_rate: int) -> int:
    """Samples until an envelope with time constant `decay_s` falls below -60 dB: a one-shot cut
    earlier (the old kick ended at 6 % of its level) clicks at its end, an extra onset per hit."""
    return int(np.ceil(DECAY_TO_SILENCE * decay_s * sample_rate))


def _end_fade(x: np.ndarray, sample_rate: int) -> np.ndarray:
    fade = max(1, int(END_FADE_SHARE * x.shape[-1]))
    x = x.copy()
    x[..., -fade:] *= (np.cos(np.linspace(0.0, np.pi / 2, fade)) ** 2).astype(x.dtype)
    return x


def _synth_piece(piece: str, sample_rate: int) -> np.ndarray:
    """One built-in one-shot, long enough for its slowest decay to ring out below -60 dB."""
    return _end_fade(_synth_raw(piece, sample_rate), sample_rate)


def _synth_raw(piece: str, sample_rate: int) -> np.ndarray:
    sr = sample_rate
    if piece == "kick":
        n = _ring_out(0.16, sr)
        body = _sweep(n, sr, 160.0, 48.0, 0.03) * _env(n, sr, 0.16)
        click = _filtered(_noise(n, 1), sr, "highpass", 2000.0) * _env(n, sr, 0.004)
        return _stereo(body + 0.3 * click, 0.0, 1.0)
    if piece == "snare":
        n = _ring_out(0.09, sr)
        tone = (_sweep(n, sr, 240.0, 180.0, 0.02) + 0.5 * _sweep(n, sr, 400.0, 330.0, 0.02)) * _env(n, sr, 0.05)
        rattle = _filtered(_noise(n, 2), sr, "bandpass", (1500.0, 9000.0)) * _env(n, sr, 0.09)
        return _stereo(0.6 * tone + rattle, 0.05, 0.85)
    if piece == "hat":
        n = _ring_out(0.025, sr)
        x = _filtered(_noise(n, 3), sr, "highpass", 4500.0) + 0.4 * _metal(n, sr)
        return _stereo(x * _env(n, sr, 0.025), 0.3, 0.7)
    if piece == "open_hat":
        n = _ring_out(0.18, sr)
        x = _filtered(_noise(n, 4), sr, "highpass", 6500.0) + 0.5 * _metal(n, sr)
        return _stereo(x * _env(n, sr, 0.18, 0.002), 0.3, 0.55)
    if piece == "tom":
        n = _ring_out(0.18, sr)
        body = _sweep(n, sr, 220.0, 120.0, 0.05) * _env(n, sr, 0.18)
        return _stereo(body + 0.05 * _noise(n, 5) * _env(n, sr, 0.02), -0.25, 0.9)
    if piece == "crash":
        n = _ring_out(CYMBAL_DECAY_S, sr)
        x = _filtered(_noise(n, 6), sr, "highpass", 4000.0) + 0.6 * _metal(n, sr)
        return _stereo(x * _env(n, sr, CYMBAL_DECAY_S, 0.002), -0.35, 0.7)
    if piece == "ride":
        n = _ring_out(CYMBAL_DECAY_S, sr)
        t = np.arange(n) / sr
        bell = sum(np.sin(2.0 * np.pi * f * t) for f in (2300.0, 3170.0, 4050.0) if f < 0.45 * sr)
        x = 0.6 * _metal(n, sr) + 0.3 * np.asarray(bell) + 0.3 * _filtered(_noise(n, 7), sr, "highpass", 5000.0)
        return _stereo(x * _env(n, sr, CYMBAL_DECAY_S), 0.4, 0.5)
    if piece == "clap":
        n = _ring_out(0.08, sr)
        burst_env = np.zeros(n)
        for delay in (0.0, 0.011, 0.022):
            s = int(delay * sr)
            burst_env[s:] = np.maximum(burst_env[s:], _env(n - s, sr, 0.008 if delay < 0.02 else 0.08))
        x = _filtered(_noise(n, 8), sr, "bandpass", (900.0, 5000.0)) * burst_env
        return _stereo(x, -0.05, 0.8)
    raise ValueError(f"unknown drum piece {piece!r}")


@functools.lru_cache(maxsize=8)
def builtin_kit(sample_rate: int = 44100) -> DrumKit:
    """The kit made in code, one one-shot per piece, cached per sample rate (about 20 ms to build)."""
    if not 4000 <= int(sample_rate) <= 384000:
        raise InputError(f"kit sample rate must be between 4000 and 384000 Hz, got {sample_rate}")
    sounds = {piece: [_synth_piece(piece, int(sample_rate))] for piece in PIECES}
    return DrumKit("builtin", int(sample_rate), sounds)


# ---------------------------------------------------------------- user kit folders


def piece_for_filename(name: str) -> str | None:
    """Which piece a sample file plays, from its name (see docs/kit.md); None if unrecognised."""
    stem = Path(name).stem.lower().replace(" ", "_")
    for piece, prefixes in NAME_PREFIXES:
        if stem.startswith(prefixes):
            return piece
    return None


def _read_one_shot(path: Path, sample_rate: int) -> np.ndarray:
    """Read, resample and cut one sample to (2, n) float32; raises InputError if unusable."""
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise InputError(f"kit sample is not readable audio: {path} ({exc})") from exc
    if data.shape[0] == 0:
        raise InputError(f"kit sample holds no audio: {path}")
    if not np.all(np.isfinite(data)):
        raise InputError(f"kit sample holds NaN or infinity: {path}")
    x = data.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    elif x.shape[0] > 2:
        x = x[:2]
    if int(sr) != sample_rate:
        import librosa

        x = librosa.resample(x, orig_sr=int(sr), target_sr=sample_rate, res_type="soxr_hq")
    if float(np.max(np.abs(x))) < 1e-4:
        raise InputError(f"kit sample is silent: {path}")
    return fade_tail(x, sample_rate)


def fade_tail(x: np.ndarray, sample_rate: int, max_s: float = MAX_SAMPLE_S) -> np.ndarray:
    """Cut a one-shot to `max_s` and, if its last millisecond is still above TAIL_DBFS of its peak
    (a cut cymbal, a SoundFont slot, a sample trimmed short), fade its last TAIL_FADE_S out so it ends
    far below TAIL_DBFS: a sample that stops while still ringing clicks."""
    x = np.array(x[:, : int(max_s * sample_rate)], dtype=np.float32)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    last_ms = max(1, int(0.001 * sample_rate))
    if peak == 0.0 or float(np.max(np.abs(x[:, -last_ms:]))) <= peak * 10.0 ** (TAIL_DBFS / 20.0):
        return np.ascontiguousarray(x)
    n = min(x.shape[1], max(int(TAIL_FADE_S * sample_rate), last_ms * 4))
    ramp = 0.5 * (1.0 + np.cos(np.pi * np.arange(1, n + 1) / n))  # 1 -> 0, raised cosine
    x[:, -n:] *= (ramp * ramp).astype(np.float32)  # squared: the last millisecond is below -100 dB
    return np.ascontiguousarray(x)


def load_kit_folder(path: str | Path, sample_rate: int = 44100) -> DrumKit:
    """Read a folder of one-shot samples named by piece (kick1.wav, snare.wav, hh_a.wav, open.wav, ...).

    Unrecognised or unreadable files are skipped with a warning; a folder with no usable sample
    raises InputError naming what was found.
    """
    folder = Path(path)
    if not folder.exists():
        raise InputError(f"kit folder not found: {folder}")
    if not folder.is_dir():
        raise InputError(f"kit path is not a folder: {folder}")
    sounds: dict[str, list[np.ndarray]] = {}
    skipped: list[str] = []
    for f in sorted(folder.iterdir()):
        if not f.is_file() or f.name.startswith(".") or f.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        piece = piece_for_filename(f.name)
        if piece is None:
            log.warning("kit %s: %s does not name a drum piece (kick, snare, hat, open, tom, crash, ride, clap); "
                        "skipped", folder, f.name)
            skipped.append(f"{f.name} (unrecognised name)")
            continue
        try:
            shot = _read_one_shot(f, int(sample_rate))
        except InputError as exc:
            log.warning("kit %s: skipped %s", folder, exc)
            skipped.append(f"{f.name} (unusable)")
            continue
        sounds.setdefault(piece, []).append(shot)
    if not sounds:
        detail = f"; skipped: {', '.join(skipped)}" if skipped else ""
        raise InputError(
            f"kit folder holds no usable drum samples: {folder} (expected audio files named like kick.wav, "
            f"snare.wav, hat.wav, open_hat.wav{detail})"
        )
    missing = [p for p in PIECES[:4] if p not in sounds]
    if missing:
        log.info("kit %s has no %s samples: those hits borrow a similar piece", folder, ", ".join(missing))
    return DrumKit(folder.name, int(sample_rate), {p: sounds[p] for p in PIECES if p in sounds})


# ---------------------------------------------------------------- rendering


def hit_gain(strength: float) -> float:
    """Velocity curve: a hit of strength s plays at 0.25 + 0.75 s, so soft hits stay audible."""
    return 0.25 + 0.75 * float(np.clip(strength, 0.0, 1.0))


def limit_peak(stem: np.ndarray, ceiling_dbfs: float = CEILING_DBFS) -> np.ndarray:
    """Scale the whole stem down when its peak passes the ceiling: no clipping, no distortion."""
    ceiling = 10.0 ** (ceiling_dbfs / 20.0)
    peak = float(np.max(np.abs(stem))) if stem.size else 0.0
    if peak > ceiling:
        log.debug("stem peak %.2f above %.1f dBFS: scaled down", peak, ceiling_dbfs)
        stem *= ceiling / peak
    return stem


def render_onsets(
    onsets: list[Onset],
    n_frames: int,
    sample_rate: int,
    kit: DrumKit,
    rng: np.random.Generator | None = None,
    master_gain: float = MASTER_GAIN,
) -> np.ndarray:
    """Mix one-shots at the onsets into a (2, n_frames) float32 stem, peak at most -1 dBFS.

    With several samples per piece, `rng` picks one at random per hit; without it they
    alternate in order (round-robin), so rendering stays deterministic.
    """
    if kit.sample_rate != sample_rate:
        raise ValueError(f"kit is at {kit.sample_rate} Hz but the stem is at {sample_rate} Hz")
    out = np.zeros((2, int(n_frames)), dtype=np.float32)
    counters: dict[int, int] = {}
    for o in sorted(onsets, key=lambda o: (o.time, o.cls)):
        start = int(round(o.time * sample_rate))
        if start >= n_frames or start < 0:
            continue
        choices = kit.sound_for(o.cls)
        if rng is not None and len(choices) > 1:
            sample = choices[int(rng.integers(0, len(choices)))]
        else:
            i = counters.get(o.cls, 0)
            counters[o.cls] = i + 1
            sample = choices[i % len(choices)]
        end = min(n_frames, start + sample.shape[1])
        out[:, start:end] += (master_gain * hit_gain(o.strength)) * sample[:, : end - start]
    return limit_peak(out)
