"""Synthetic rhythm prompts with known onsets: for tests, the demo and training augmentation.

The sounds imitate what people actually feed the product (a beatboxing mouth, fingers on a
table, a single click) and are deliberately unlike the built-in drum kit, so a test that passes
here shows the rhythm extractor generalises beyond the sounds we render ourselves.
Everything is numpy only and deterministic for a given seed.
"""

from __future__ import annotations

import numpy as np

from darc_bridge.rhythm.features import Onset

VOICES = ("beatbox", "tap", "clicks")


def _band_noise(rng: np.random.Generator, n: int, sr: int, centre: float, width: float) -> np.ndarray:
    """White noise shaped by a Gaussian band (a formant) in the frequency domain."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.exp(-0.5 * ((freqs - centre) / width) ** 2)
    out = np.fft.irfft(spec, n)
    peak = np.max(np.abs(out))
    return out / peak if peak > 0 else out


def _envelope(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    t = np.arange(n) / sr
    attack = np.clip(t / max(attack_s, 1e-4), 0.0, 1.0)
    return attack * np.exp(-np.maximum(t - attack_s, 0.0) / decay_s)


def _cap(freq: float, sr: int) -> float:
    """Keep a band centre under Nyquist so 8-16 kHz prompts still hold every class."""
    return min(freq, 0.42 * sr)


def _beatbox_hit(rng: np.random.Generator, cls: int, sr: int) -> np.ndarray:
    """Mouth sounds: voiced "boom", a "k"/"pff" burst with a mid formant, a "ts" hiss."""
    if cls == 0:
        n = int(sr * rng.uniform(0.12, 0.2))
        t = np.arange(n) / sr
        f0 = rng.uniform(95, 130) * np.exp(-t / 0.05) + rng.uniform(50, 65)
        phase = 2 * np.pi * np.cumsum(f0) / sr
        voiced = sum(np.sin(k * phase) / k**2 for k in range(1, 5))
        lips = _band_noise(rng, n, sr, 300.0, 200.0) * _envelope(n, sr, 0.001, 0.006)
        return voiced * _envelope(n, sr, 0.004, rng.uniform(0.05, 0.08)) + 0.3 * lips
    if cls == 1:
        n = int(sr * rng.uniform(0.09, 0.14))
        formant = _cap(rng.uniform(1400, 2200), sr)
        burst = _band_noise(rng, n, sr, formant, 500.0)
        body = _band_noise(rng, n, sr, _cap(rng.uniform(700, 900), sr), 150.0)
        return (burst + 0.5 * body) * _envelope(n, sr, 0.002, rng.uniform(0.03, 0.05))
    n = int(sr * rng.uniform(0.06, 0.12))
    hiss = _band_noise(rng, n, sr, _cap(rng.uniform(7000, 9000), sr), _cap(1800.0, sr) / 2)
    return hiss * _envelope(n, sr, 0.003, rng.uniform(0.02, 0.04))


def _tap_hit(rng: np.random.Generator, cls: int, sr: int) -> np.ndarray:
    """Finger and knuckle taps on a table: damped resonances plus a contact click."""
    centre, decay, n_s = [(180.0, 0.03, 0.09), (850.0, 0.018, 0.06), (3800.0, 0.008, 0.035)][min(cls, 2)]
    centre = _cap(centre * rng.uniform(0.9, 1.1), sr)
    n = int(sr * n_s)
    t = np.arange(n) / sr
    ring = np.sin(2 * np.pi * centre * t + rng.uniform(0, np.pi)) * np.exp(-t / (decay * rng.uniform(0.85, 1.15)))
    click = _band_noise(rng, n, sr, _cap(centre * 2.0, sr), centre * 0.6) * _envelope(n, sr, 0.0005, 0.003)
    return ring * _envelope(n, sr, 0.0008, 1.0) + 0.4 * click


def _click_hit(rng: np.random.Generator, sr: int) -> np.ndarray:
    """One timbre for every class: the single-sound prompt (a pen on a desk, a metronome)."""
    n = int(sr * 0.03)
    t = np.arange(n) / sr
    ring = np.sin(2 * np.pi * _cap(1500.0, sr) * t) * np.exp(-t / 0.006)
    return ring + 0.3 * _band_noise(rng, n, sr, _cap(3000.0, sr), 800.0) * _envelope(n, sr, 0.0005, 0.002)


def synth_prompt(
    onsets: list[Onset],
    duration: float,
    sample_rate: int = 44100,
    voice: str = "beatbox",
    seed: int = 0,
) -> np.ndarray:
    """Render `onsets` as a mono float32 prompt of `duration` seconds, peak 0.9.

    Each hit varies a little in pitch, length and level (seeded), like a real performance;
    class k >= 3 reuses the highest sound so any n_classes renders.
    """
    if voice not in VOICES:
        raise ValueError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    if duration <= 0 or sample_rate <= 0:
        raise ValueError("duration and sample_rate must be positive")
    rng = np.random.default_rng(seed)
    out = np.zeros(int(round(duration * sample_rate)), dtype=np.float64)
    for o in sorted(onsets, key=lambda o: (o.time, o.cls)):
        start = int(round(o.time * sample_rate))
        if start >= out.size or start < 0:
            continue
        if voice == "beatbox":
            hit = _beatbox_hit(rng, min(o.cls, 2), sample_rate)
        elif voice == "tap":
            hit = _tap_hit(rng, o.cls, sample_rate)
        else:
            hit = _click_hit(rng, sample_rate)
        fade = min(hit.size, int(0.01 * sample_rate))  # no click where a hit is cut off
        hit[hit.size - fade :] *= np.cos(np.linspace(0.0, np.pi / 2, fade)) ** 2
        hit = hit / max(np.max(np.abs(hit)), 1e-9) * float(np.clip(o.strength, 0.0, 1.0)) * rng.uniform(0.9, 1.0)
        end = min(out.size, start + hit.size)
        out[start:end] += hit[: end - start]
    peak = np.max(np.abs(out))
    if peak > 0:
        out *= 0.9 / peak
    return out.astype(np.float32)


def random_pattern(duration: float, bpm: float, seed: int, n_classes: int = 3) -> list[Onset]:
    """A plausible groove on a 16th grid: kick on 1 and 3 plus pickups, snare on 2 and 4 with
    ghost notes, hats on 8ths, 16ths or sparse offbeats, an optional swing; classes >= 3 get
    occasional accents. The first hit comes after a short lead-in, as in a real recording."""
    if not 1 <= n_classes <= 8:
        raise ValueError(f"n_classes must be between 1 and 8, got {n_classes}")
    rng = np.random.default_rng(seed)
    step = 60.0 / bpm / 4.0
    swing = rng.choice([0.0, 0.0, rng.uniform(0.08, 0.2)]) * step
    hat_mode = rng.choice(["8ths", "16ths", "sparse", "offbeats"])
    lead_in = rng.uniform(0.08, 0.25)
    onsets: list[Onset] = []
    n_steps = int((duration - lead_in - 0.15) / step)
    for i in range(max(n_steps, 0)):
        pos = i % 16
        t = lead_in + i * step + (swing if i % 2 else 0.0)

        def hit(cls: int, lo: float, hi: float, t: float = t) -> None:
            if cls < n_classes:
                onsets.append(Onset(round(t, 5), cls, round(float(rng.uniform(lo, hi)), 3)))

        if pos in (0, 8) or (pos in (6, 10, 14) and rng.random() < 0.25):
            hit(0, 0.8, 1.0)
        if pos in (4, 12):
            hit(1, 0.75, 1.0)
        elif pos in (7, 9, 15) and rng.random() < 0.12:
            hit(1, 0.4, 0.6)
        hat = {
            "8ths": pos % 2 == 0,
            "16ths": rng.random() < 0.85,
            "sparse": pos % 4 == 2 and rng.random() < 0.7,
            "offbeats": pos % 4 == 2,
        }[str(hat_mode)]
        if hat:
            hit(2, 0.5, 0.9)
        for extra in range(3, n_classes):
            if pos == (extra * 3) % 16 and rng.random() < 0.5:
                hit(extra, 0.6, 0.9)
    return onsets


def add_noise(x: np.ndarray, snr_db: float, seed: int = 0, color: str = "white") -> np.ndarray:
    """Add white or pink noise at `snr_db` below the signal's RMS over the whole take."""
    if color not in ("white", "pink"):
        raise ValueError(f"unknown noise colour {color!r}; choose white or pink")
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(x.shape)
    if color == "pink":
        spec = np.fft.rfft(noise, axis=-1)
        freqs = np.arange(spec.shape[-1], dtype=np.float64)
        freqs[0] = 1.0
        noise = np.fft.irfft(spec / np.sqrt(freqs), n=x.shape[-1], axis=-1)
    rms_x = np.sqrt(np.mean(x**2))
    rms_n = np.sqrt(np.mean(noise**2))
    if rms_x == 0 or rms_n == 0:
        return x.astype(np.float32)
    noise *= rms_x / rms_n / 10 ** (snr_db / 20.0)
    return (x + noise).astype(np.float32)
