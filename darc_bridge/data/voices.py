"""Numpy drum voices in several timbre families, used to re-render known onsets.

Training re-renders the target's onsets with families the model never hears in the drums
("noise", "click", "voice"), so it learns *when* and *which class*, not *what it sounds like*.
Two kit families ("acoustic", "electro") render corpus drums and let tests check that the
transcriber works on a kit it was not tuned on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from scipy.signal import butter, sosfilt

from darc_bridge.rhythm.features import Onset

VoiceFn = Callable[[int, int, np.random.Generator], np.ndarray]
"""voice(cls, sample_rate, rng) -> one-shot (frames,) float32 peaking near 1."""

FAMILIES = ("acoustic", "electro", "noise", "click", "voice")
PROMPT_FAMILIES = ("noise", "click", "voice")  # timbres used for training prompts


def _t(seconds: float, sr: int) -> np.ndarray:
    return np.arange(int(seconds * sr)) / sr


def _band(x: np.ndarray, sr: int, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    nyq = sr / 2.0
    if lo and hi:
        sos = butter(order, [lo / nyq, min(hi / nyq, 0.99)], btype="band", output="sos")
    elif lo:
        sos = butter(order, min(lo / nyq, 0.99), btype="high", output="sos")
    else:
        sos = butter(order, min(hi / nyq, 0.99), btype="low", output="sos")
    return sosfilt(sos, x)


def _norm(x: np.ndarray) -> np.ndarray:
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x / peak if peak > 0 else x).astype(np.float32)


def _acoustic(cls: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if cls == 0:
        t = _t(0.35, sr)
        f = 50 + 90 * np.exp(-t / 0.03)
        body = np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)
        click = _band(rng.standard_normal(t.size), sr, 1500, 5000) * np.exp(-t / 0.004) * 0.3
        return _norm(body + click)
    if cls == 1:
        t = _t(0.25, sr)
        tone = np.sin(2 * np.pi * 185 * t) * np.exp(-t / 0.05)
        noise = _band(rng.standard_normal(t.size), sr, 1000, 8000) * np.exp(-t / 0.07)
        return _norm(0.6 * tone + noise)
    t = _t(0.09 if cls == 2 else 0.4, sr)
    noise = _band(rng.standard_normal(t.size), sr, 7000, None) * np.exp(-t / (0.025 if cls == 2 else 0.15))
    return _norm(noise)


def _electro(cls: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    if cls == 0:  # 808-like: long low sine, slow pitch drop, no click
        t = _t(0.6, sr)
        f = 45 + 40 * np.exp(-t / 0.05)
        return _norm(np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.25))
    if cls == 1:  # clap: three short noise bursts in the upper mids
        t = _t(0.3, sr)
        env = np.zeros_like(t)
        for k, d in enumerate((0.0, 0.011, 0.022)):
            env += (t >= d) * np.exp(-np.maximum(t - d, 0) / (0.006 if k < 2 else 0.09))
        return _norm(_band(rng.standard_normal(t.size), sr, 800, 4000) * env)
    t = _t(0.12 if cls == 2 else 0.5, sr)  # metallic hat: detuned square waves, high-passed
    sq = sum(np.sign(np.sin(2 * np.pi * f * t)) for f in (205, 304, 369, 523, 540, 800))
    return _norm(_band(sq, sr, 6000, None) * np.exp(-t / (0.03 if cls == 2 else 0.2)))


def _noise(cls: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    bands = [(None, 200.0), (500.0, 3000.0), (6000.0, None)]
    lo, hi = bands[min(cls, 2)]
    t = _t(0.12, sr)
    return _norm(_band(rng.standard_normal(t.size), sr, lo, hi) * np.exp(-t / rng.uniform(0.015, 0.04)))


def _click(cls: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    freq = (90.0, 900.0, 7000.0)[min(cls, 2)] * rng.uniform(0.9, 1.1)
    t = _t(0.05, sr)
    return _norm(np.sin(2 * np.pi * freq * t) * np.exp(-t / (0.012 if cls == 0 else 0.004)))


def _voice(cls: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Beatbox-like: a voiced 'b' (glottal pulses through a low formant), 'k'/'psh', sibilant 'ts'."""
    if cls == 0:
        t = _t(0.18, sr)
        f0 = rng.uniform(90, 130)
        pulses = np.sign(np.sin(2 * np.pi * f0 * t)) * np.exp(-t / 0.05)
        return _norm(_band(pulses, sr, 60, 400, order=2))
    if cls == 1:
        t = _t(0.2, sr)
        return _norm(_band(rng.standard_normal(t.size), sr, 1500, 4500, order=2) * np.exp(-t / 0.06))
    t = _t(0.15, sr)
    return _norm(_band(rng.standard_normal(t.size), sr, 5500, 11000, order=2) * np.exp(-t / 0.04))


_FAMILY_FNS: dict[str, VoiceFn] = {
    "acoustic": _acoustic,
    "electro": _electro,
    "noise": _noise,
    "click": _click,
    "voice": _voice,
}

CLASS_GAIN = (1.0, 0.8, 0.45, 0.45)  # kick loudest, hats quieter, as in a mixed kit


def render_onsets(
    onsets: Iterable[Onset],
    duration: float,
    sample_rate: int,
    family: str = "acoustic",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Render onsets (time, class, strength) with one timbre family: (frames,) float32, peak <= 1."""
    if family not in _FAMILY_FNS:
        raise ValueError(f"unknown voice family {family!r}; choose one of: {', '.join(FAMILIES)}")
    rng = rng or np.random.default_rng(0)
    fn = _FAMILY_FNS[family]
    n = int(round(duration * sample_rate))
    out = np.zeros(n, dtype=np.float64)
    shots: dict[int, np.ndarray] = {}
    for o in onsets:
        start = int(round(o.time * sample_rate))
        if not 0 <= start < n:
            continue
        cls = min(int(o.cls), 3)
        if family in PROMPT_FAMILIES or cls not in shots:  # prompts vary hit to hit, kits do not
            shots[cls] = fn(cls, sample_rate, rng)
        shot = shots[cls]
        end = min(n, start + shot.size)
        gain = CLASS_GAIN[cls] * float(np.clip(o.strength, 0.05, 1.0))
        out[start:end] += gain * shot[: end - start]
    peak = float(np.max(np.abs(out))) if n else 0.0
    if peak > 0.99:
        out *= 0.99 / peak
    return out.astype(np.float32)
