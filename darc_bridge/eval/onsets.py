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


# ---------------------------------------------------------------- plain baselines and scores
# The rhythm benchmark (darc_bridge.bench.rhythm) runs these next to the extractor on every run: an
# extractor that cannot beat librosa's detector and a 3-way k-means is not worth its complexity.

ONSET_WINDOW_S = 0.05  # mir_eval's usual onset tolerance
CENTROID_WINDOW_S = 0.05  # the k-means baseline's feature: log centroid of the first 50 ms of a hit


def librosa_onsets(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Baseline 1: librosa.onset.onset_detect with its defaults, in seconds (class-blind)."""
    y = np.asarray(audio, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    return np.asarray(librosa.onset.onset_detect(y=y, sr=sample_rate, units="time"), dtype=float)


def kmeans_classes(audio: np.ndarray, sample_rate: int, times: np.ndarray, n_classes: int = 3,
                   seed: int = 0) -> np.ndarray:
    """Baseline 2: each onset's class from a k-means on the log spectral centroid of its first 50 ms,
    clusters numbered low to high (kick, snare, hat)."""
    from sklearn.cluster import KMeans

    y = np.asarray(audio, dtype=np.float32)
    times = np.asarray(times, dtype=float)
    if times.size == 0:
        return np.zeros(0, dtype=int)
    hop = 256
    cent = librosa.feature.spectral_centroid(y=y, sr=sample_rate, hop_length=hop)[0]
    log_c = np.log(np.maximum(cent, 1.0))
    fps = sample_rate / hop
    feats = np.array([log_c[int(t * fps): max(int(t * fps) + 1, int((t + CENTROID_WINDOW_S) * fps))].mean()
                      if int(t * fps) < log_c.size else log_c[-1] for t in times])
    k = min(n_classes, len(np.unique(np.round(feats, 6))))
    if k < 2:
        return np.zeros(times.size, dtype=int)
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(feats[:, None])
    rank = np.argsort(np.argsort(km.cluster_centers_[:, 0]))
    return rank[km.labels_].astype(int)


def onset_f1(reference: np.ndarray, estimated: np.ndarray, window: float = ONSET_WINDOW_S) -> float:
    """mir_eval onset F-measure on distinct times (two hits at one time count once)."""
    import mir_eval

    ref = np.unique(np.round(np.asarray(reference, dtype=float), 4))
    est = np.unique(np.round(np.asarray(estimated, dtype=float), 4))
    if ref.size == 0 and est.size == 0:
        return 1.0
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(mir_eval.onset.f_measure(ref, est, window=window)[0])


def class_f1(ref_times: np.ndarray, ref_classes: np.ndarray, est_times: np.ndarray, est_classes: np.ndarray,
             classes: tuple[int, ...] = (0, 1, 2)) -> float:
    """Macro mean over `classes` that the reference plays of the per-class onset F1."""
    ref_times, ref_classes = np.asarray(ref_times), np.asarray(ref_classes)
    est_times, est_classes = np.asarray(est_times), np.asarray(est_classes)
    played = [c for c in classes if np.any(ref_classes == c)]
    if not played:
        return 1.0 if not np.isin(est_classes, classes).any() else 0.0
    return float(np.mean([onset_f1(ref_times[ref_classes == c], est_times[est_classes == c]) for c in played]))
