"""Onset detection: librosa's onset envelope, peaks picked with scipy.

librosa.onset.onset_detect picks peaks through a numba gufunc that crashes (segfault) with the
numba 0.68 / numpy 2.4 pair installed here, so peaks are picked with scipy.signal.find_peaks
using librosa's own default rule: a local maximum, at least `delta` above the mean of the
surrounding 0.1 s, and at least `wait_s` after the previous onset.
"""

from __future__ import annotations

import librosa
import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks


def onset_envelope(audio: np.ndarray, sample_rate: int, hop_length: int = 256) -> np.ndarray:
    """librosa spectral-flux onset strength, scaled to 0..1."""
    env = librosa.onset.onset_strength(y=np.asarray(audio, dtype=np.float32), sr=sample_rate, hop_length=hop_length)
    span = float(env.max() - env.min()) if env.size else 0.0
    return (env - env.min()) / span if span > 0 else np.zeros_like(env)


def pick_peaks(env: np.ndarray, frame_rate: float, delta: float = 0.07, wait_s: float = 0.03,
               avg_s: float = 0.1) -> np.ndarray:
    """Frame indices of peaks in a 0..1 envelope."""
    if env.size < 3:
        return np.zeros(0, dtype=int)
    avg = uniform_filter1d(env, size=max(1, int(round(2 * avg_s * frame_rate)) + 1), mode="nearest")
    peaks, _ = find_peaks(env, distance=max(1, int(round(wait_s * frame_rate))))
    return peaks[env[peaks] >= avg[peaks] + delta]


def detect_onsets(audio: np.ndarray, sample_rate: int, hop_length: int = 256, delta: float = 0.07) -> np.ndarray:
    """Onset times in seconds of a mono signal."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    if not np.any(audio):
        return np.zeros(0)
    env = onset_envelope(audio, sample_rate, hop_length)
    frame_rate = sample_rate / hop_length
    return pick_peaks(env, frame_rate, delta) / frame_rate
