"""Synthetic drumless music with known beats: test material, the demo and the synthetic corpus.

A real drumless mix would need a download; this one is made in numpy from a seed, so every
test knows the true tempo, beats and downbeats. Bass notes sit on the beats, the chord pad
changes on each downbeat (the harmonic change a beat tracker can hear without drums) and a
plucked lead plays quarters and eighths from a pentatonic scale.
"""

from __future__ import annotations

import numpy as np

from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import Onset

_NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
# I - V - vi - IV in semitones above the key, as (root, third, fifth)
_PROGRESSION = ((0, 4, 7), (7, 11, 14), (9, 12, 16), (5, 9, 12))
_PENTATONIC = (0, 2, 4, 7, 9)


def _key_offset(key: int | str | None, rng: np.random.Generator) -> int:
    """Semitones above C: None picks one from the seed; accepts 0..11 or a name like "F#" or "Bb"."""
    if key is None:
        return int(rng.integers(0, 12))
    if isinstance(key, int):
        return key % 12
    name = key.strip()
    if not name or name[0].upper() not in _NOTE_NAMES:
        raise InputError(f"unknown key {key!r}: use a note name such as C, F# or Bb, or 0..11")
    offset = _NOTE_NAMES[name[0].upper()] + name[1:].count("#") - name[1:].count("b")
    return offset % 12


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69.0) / 12.0)


def _tone(freq: float, n: int, sample_rate: int, harmonics: tuple[float, ...]) -> np.ndarray:
    """Additive tone; harmonics above Nyquist are dropped so any sample rate stays alias-free."""
    t = np.arange(n, dtype=np.float64) / sample_rate
    out = np.zeros(n, dtype=np.float64)
    for k, amp in enumerate(harmonics, start=1):
        if k * freq < 0.45 * sample_rate:
            out += amp * np.sin(2.0 * np.pi * k * freq * t)
    return out


def _add(buf: np.ndarray, start: int, sig: np.ndarray, gains: tuple[float, float]) -> None:
    """Add a mono note into the stereo buffer at `start`, cut at the buffer's end."""
    end = min(buf.shape[1], start + sig.shape[0])
    if end <= start:
        return
    buf[0, start:end] += gains[0] * sig[: end - start]
    buf[1, start:end] += gains[1] * sig[: end - start]


def synth_drumless_mix(
    duration: float,
    bpm: float = 110.0,
    sample_rate: int = 44100,
    seed: int = 0,
    key: int | str | None = None,
    beats_per_bar: int = 4,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A deterministic drumless piece: (samples (2, n) float32, beat_times, downbeat_times) in seconds.

    The first beat (a downbeat) is at 0 s. Peak level is 0.8.
    """
    if duration <= 0 or not np.isfinite(duration):
        raise InputError(f"duration must be a positive number of seconds, got {duration!r}")
    if not 20.0 <= bpm <= 400.0:
        raise InputError(f"bpm must be between 20 and 400, got {bpm!r}")
    rng = np.random.default_rng(seed)
    root = 36 + _key_offset(key, rng)  # bass octave
    n = int(round(duration * sample_rate))
    period = 60.0 / bpm
    beats = np.arange(0.0, duration - 1e-9, period)
    downbeats = beats[::beats_per_bar]
    buf = np.zeros((2, n), dtype=np.float64)

    for i, b in enumerate(beats):
        bar, pos = divmod(i, beats_per_bar)
        chord = _PROGRESSION[bar % len(_PROGRESSION)]
        start = int(round(b * sample_rate))
        # bass: the chord root on every beat, the fifth on the third beat, accented downbeat
        note = root + chord[0] + (7 if pos == 2 else 0)
        ln = int(0.9 * period * sample_rate)
        env = np.exp(-np.arange(ln) / (0.22 * sample_rate)) * np.minimum(1.0, np.arange(ln) / (0.004 * sample_rate))
        sig = _tone(_midi_hz(note), ln, sample_rate, (1.0, 0.5, 0.25, 0.12)) * env
        _add(buf, start, sig, (0.55, 0.55) if pos == 0 else (0.4, 0.4))
        if pos == 0:
            # pad: the bar's chord, fast attack so the change is audible at the downbeat
            ln = int(min(beats_per_bar * period, duration - b + 0.01) * sample_rate)
            k = np.arange(ln)
            env = np.minimum(1.0, k / (0.02 * sample_rate)) * np.minimum(1.0, (ln - k) / (0.06 * sample_rate))
            env *= 0.6 + 0.4 * np.exp(-k / (0.5 * sample_rate))
            for v, interval in enumerate(chord):
                sig = _tone(_midi_hz(root + 24 + interval), ln, sample_rate, (1.0, 0.4, 0.2, 0.1)) * env
                pan = (0.12, 0.08) if v % 2 == 0 else (0.08, 0.12)
                _add(buf, start, sig, pan)
        # lead: a quarter, two eighths or a rest on each beat
        rhythm = rng.choice(3, p=(0.5, 0.3, 0.2))
        starts = [b] if rhythm == 0 else [b, b + period / 2] if rhythm == 1 else []
        for s in starts:
            note = root + 36 + _PENTATONIC[int(rng.integers(0, len(_PENTATONIC)))]
            ln = int(0.45 * period * sample_rate)
            env = np.exp(-np.arange(ln) / (0.12 * sample_rate)) * np.minimum(1.0, np.arange(ln) / (0.003 * sample_rate))
            sig = _tone(_midi_hz(note), ln, sample_rate, (1.0, 0.2, 0.15)) * env
            _add(buf, int(round(s * sample_rate)), sig, (0.2, 0.13))

    peak = float(np.max(np.abs(buf))) if n else 0.0
    if peak > 0:
        buf *= 0.8 / peak
    return buf.astype(np.float32), beats, downbeats


def synth_drum_stem(
    onsets: list[Onset],
    duration: float,
    sample_rate: int = 44100,
    kit=None,
) -> np.ndarray:
    """Render known onsets with the built-in kit (or `kit`): (2, n) float32, peak at most -1 dBFS."""
    from darc_bridge.engines.drumkit import builtin_kit, render_onsets

    n = int(round(duration * sample_rate))
    return render_onsets(onsets, n, sample_rate, kit if kit is not None else builtin_kit(sample_rate))
