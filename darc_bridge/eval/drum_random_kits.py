"""Procedural drum kits for domain randomisation: stems played by kits whose every timbre is drawn at random.

Why: a kit the transcriber's model has not heard is where it fails (a kick+hat heard as a snare, a
snare missed under a cymbal); procedural kits whose every timbre parameter is drawn over a wide
range would teach a kick, a snare or a hat as a band and an envelope, not as one kit's sound. Why a
module of its own: it is an option tried and kept off by default (`Recipe.random_stems`,
`--random-stems` of `python -m darc_bridge.eval.drum_model`), beside the recorded material of
eval/drum_material.py, whose stems and frames it reuses. It lowered the folds' snare F1 (0.762 ->
0.698 with 256 such stems; docs/evaluation.md), so the committed weights hold none.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from darc_bridge.eval.drum_material import render_stem, stem_frames
from darc_bridge.eval.drum_model import SAMPLE_RATE, Recipe

RANDOM_KIT = "random"  # the name of procedural kits (tune material: no recorded sample in them)


def _decay(n: int, seconds: float) -> np.ndarray:
    """An exponential envelope falling 60 dB over `seconds`."""
    return np.exp(-6.9 * np.arange(n) / (seconds * SAMPLE_RATE)).astype(np.float32)


def _band(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    nyq = SAMPLE_RATE / 2
    lo, hi = max(20.0, lo), min(0.95 * nyq, hi)
    if hi <= lo * 1.1:
        hi = min(0.95 * nyq, lo * 1.5)
    return sosfilt(butter(2, [lo / nyq, hi / nyq], btype="band", output="sos"), noise).astype(np.float32)


def _metal(n: int, rng: np.random.Generator, base: float) -> np.ndarray:
    """Six detuned square waves (a cymbal's inharmonic partials, as drum machines make them)."""
    t = np.arange(n) / SAMPLE_RATE
    ratios = np.array([1.0, 1.48, 1.65, 1.94, 2.53, 2.77]) * rng.uniform(0.9, 1.1, 6)
    return np.sign(np.sin(2 * np.pi * base * ratios[:, None] * t)).sum(axis=0).astype(np.float32) / 6


def random_piece(piece: str, rng: np.random.Generator) -> np.ndarray:
    """One procedural drum sound of `piece` (its class as grooves.PIECE_CLASS counts it), every
    timbre parameter drawn at random over a wide range: what makes a kick, a snare or a hat is then
    a band and an envelope, not one kit's sound."""
    u = rng.uniform
    noise = rng.standard_normal(int(1.3 * SAMPLE_RATE)).astype(np.float32)
    if piece == "kick":  # a falling sine (a membrane), a click of the beater, some drive
        n = int(u(0.2, 0.6) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f_end, f_start = u(40, 75), u(90, 300)
        freq = f_end + (f_start - f_end) * np.exp(-t / u(0.008, 0.06))
        body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * _decay(n, u(0.15, 0.6))
        click = _band(noise[:n], u(1000, 3000), u(4000, 9000)) * _decay(n, u(0.003, 0.015)) * u(0, 1.5)
        x = np.tanh(u(1, 4) * (body + click)) / np.tanh(1.0)
    elif piece in ("snare", "tom", "clap"):
        n = int(u(0.15, 0.5) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        if piece == "clap":  # a few bursts of band-passed noise a few ms apart, then a tail
            env = sum(_decay(n, 0.03) * (t >= d) * np.exp(-6.9 * np.maximum(t - d, 0) / 0.02)
                      for d in np.cumsum(u(0.005, 0.015, int(rng.integers(2, 5)))))
            env = np.maximum(env, 0.5 * _decay(n, u(0.1, 0.4)) * (t > 0.03))
            x = _band(noise[:n], u(700, 1500), u(2000, 6000)) * env
        else:  # a pitched body (toms: most of the sound) and a band of rattle (snares: most of it)
            f0 = u(70, 250) if piece == "tom" else u(140, 330)
            freq = f0 * (1 + u(0, 0.5) * np.exp(-t / 0.02))
            body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) + u(0, 0.5) * np.sin(
                2 * np.pi * np.cumsum(freq * u(1.5, 2.3)) / SAMPLE_RATE)
            body *= _decay(n, u(0.06, 0.2) if piece == "snare" else u(0.2, 0.5))
            lo = u(300, 2000)
            rattle = _band(noise[:n], lo, lo * u(2, 8)) * _decay(n, u(0.08, 0.35))
            mix = u(0.4, 0.9) if piece == "snare" else u(0.0, 0.15)
            x = (1 - mix) * body + mix * 2 * rattle
    else:  # hats and cymbals: high-passed noise and metallic partials
        seconds = {"hat": u(0.02, 0.15), "open_hat": u(0.25, 0.7), "ride": u(0.6, 1.2), "crash": u(0.7, 1.2)}[piece]
        n = int(min(1.2, seconds * 1.5) * SAMPLE_RATE)
        lo = u(1500, 7000) if piece in ("hat", "open_hat") else u(1000, 5000)
        metal = _metal(n, rng, u(250, 600)) * u(0, 1)
        x = _band(noise[:n] + 3 * metal, lo, u(0.6, 0.95) * SAMPLE_RATE / 2) * _decay(n, seconds)
        if piece == "ride":  # a bell: a few partials above 2 kHz
            x += u(0, 0.3) * np.sin(2 * np.pi * u(2000, 4000) * np.arange(n) / SAMPLE_RATE) * _decay(n, seconds)
    x = np.asarray(x, dtype=np.float32)
    ramp = min(x.size, int(0.0005 * SAMPLE_RATE) + 1)
    x[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)  # no step at the start
    return x / (float(np.max(np.abs(x))) + 1e-9)


def random_kit(rng: np.random.Generator):
    """A PackKit of procedural pieces (random_piece), three velocity layers each: a softer stroke is
    duller (low-passed), as a real drum's is."""
    from darc_bridge.data.grooves import PIECE_CLASS
    from darc_bridge.data.kit_pack import PackKit, Shot

    kit = PackKit(RANDOM_KIT, "tune")
    for piece in PIECE_CLASS:
        x = random_piece(piece, rng)
        layers = []
        for v in (0.25, 0.6, 0.9):
            cutoff = min(0.45 * SAMPLE_RATE, 2000 + 9000 * v)
            y = sosfilt(butter(1, cutoff / (SAMPLE_RATE / 2), output="sos"), x) if v < 0.9 else x
            layers.append(Shot(np.asarray(y / (np.max(np.abs(y)) + 1e-9), dtype=np.float32), v))
        kit.pieces[piece] = [layers]
    return kit


def random_kit_frames(recipe: Recipe) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Training frames of `recipe.random_stems` stems, each played by a fresh random_kit."""
    if not recipe.random_stems:
        return []
    rng = np.random.default_rng([recipe.seed, 17])
    frames = np.random.default_rng([recipe.seed, 19])
    xs, ys = [], []
    for i in range(recipe.random_stems):
        x, truth = render_stem(random_kit(rng), recipe.seed * 7919 + i, recipe.duration, eq=recipe.eq,
                               combos=recipe.combos)
        fx, fy = stem_frames(x, truth, frames, recipe.context, recipe.mask_ratio, recipe.tilt)
        xs.append(fx)
        ys.append(fy)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return [(x, y, np.full(x.shape[0], -1, dtype=np.int16))]

