"""Numbers that say whether a generated stem follows the prompt and fits the song.

- onset F1: the stem's onsets against the prompt's (mir_eval, 50 ms window): rhythm adherence.
- per-class F1: kick / snare / hat of a transcription of the stem (eval/transcribe.py) against
  the prompt's classes: does a low prompt sound become a kick, a high one a hat.
- grid alignment: the fraction of the stem's hits within 50 ms of a 16th of the mix's beat grid,
  plus the beat F-measure of the stem's own beat track against the mix's beats.
- coherence (0..1): the mean of tempo agreement (1 when the stem's tempo is the mix's, or its
  double or half, within 4 %) and the correlation of the stem's and mix's onset envelopes at
  zero lag, clipped at 0. A stem in time with the song scores high on both; a stem at another
  tempo or shifted off the beat scores low. The best lag within half a beat is reported too.
"""

from __future__ import annotations

import mir_eval
import numpy as np

from darc_bridge.beat.grid import BeatGrid
from darc_bridge.eval.onsets import onset_envelope
from darc_bridge.rhythm.features import CLASS_NAMES, Onset

WINDOW_S = 0.05
TEMPO_TOLERANCE = 0.04
ENVELOPE_HOP = 512


def onset_f1(reference: np.ndarray, estimate: np.ndarray, window: float = WINDOW_S) -> dict[str, float]:
    """F-measure, precision, recall of onset times (s); empty on both sides counts as perfect."""
    ref = np.sort(np.asarray(reference, dtype=float))
    est = np.sort(np.asarray(estimate, dtype=float))
    if ref.size == 0 and est.size == 0:
        return {"f1": 1.0, "precision": 1.0, "recall": 1.0}
    if ref.size == 0 or est.size == 0:
        return {"f1": 0.0, "precision": 0.0 if est.size else 1.0, "recall": 0.0 if ref.size else 1.0}
    f, p, r = mir_eval.onset.f_measure(ref, est, window=window)
    return {"f1": float(f), "precision": float(p), "recall": float(r)}


def per_class_f1(reference: list[Onset], estimate: list[Onset], n_classes: int = 3,
                 window: float = WINDOW_S) -> dict[str, dict[str, float]]:
    """onset_f1 for each of the first `n_classes` classes, keyed by class name (kick, snare, hat)."""
    out = {}
    for c in range(n_classes):
        ref = np.array([o.time for o in reference if o.cls == c])
        est = np.array([o.time for o in estimate if o.cls == c])
        out[CLASS_NAMES[c]] = onset_f1(ref, est, window)
    return out


def grid_alignment(onset_times: np.ndarray, grid: BeatGrid, per_beat: int = 4, tolerance: float = WINDOW_S) -> float:
    """Fraction of onsets within `tolerance` of a grid subdivision (16ths by default); NaN if no onsets."""
    times = np.asarray(onset_times, dtype=float)
    points = grid.subdivisions(per_beat)
    if times.size == 0 or points.size == 0:
        return float("nan")
    dist = np.min(np.abs(times[:, None] - points[None, :]), axis=1)
    return float(np.mean(dist <= tolerance))


def beat_f_measure(reference_beats: np.ndarray, estimated_beats: np.ndarray) -> float:
    """mir_eval's beat F-measure (70 ms window), without its 5 s trim: our regions are short."""
    ref, est = np.asarray(reference_beats, float), np.asarray(estimated_beats, float)
    if ref.size == 0 or est.size == 0:
        return 0.0
    return float(mir_eval.beat.f_measure(ref, est))


def tempo_agreement(stem_tempo: float, mix_tempo: float, tolerance: float = TEMPO_TOLERANCE) -> float:
    """1.0 when the tempi match, or one is double or half the other, within `tolerance`; else 0.0."""
    if stem_tempo <= 0 or mix_tempo <= 0:
        return 0.0
    ratio = stem_tempo / mix_tempo
    return float(min(abs(ratio * k - 1.0) for k in (0.5, 1.0, 2.0)) <= tolerance)


def envelope_correlation(stem: np.ndarray, mix: np.ndarray, sample_rate: int, beat_period: float) -> tuple[float, float]:
    """(correlation at zero lag, best lag in seconds within half a beat) of the onset envelopes.

    A positive lag means the stem comes late against the mix.
    """
    a = onset_envelope(stem, sample_rate, ENVELOPE_HOP)
    b = onset_envelope(mix, sample_rate, ENVELOPE_HOP)
    n = min(a.size, b.size)
    a, b = a[:n] - a[:n].mean(), b[:n] - b[:n].mean()
    norm = float(np.sqrt(np.sum(a * a) * np.sum(b * b)))
    if n < 2 or norm == 0:
        return 0.0, 0.0
    frame_rate = sample_rate / ENVELOPE_HOP
    max_lag = max(1, int(0.5 * beat_period * frame_rate))
    lags = np.arange(-max_lag, max_lag + 1)
    corr = np.array([np.sum(a[max(0, k) : n + min(0, k)] * b[max(0, -k) : n - max(0, k)]) for k in lags]) / norm
    return float(corr[max_lag]), float(lags[int(np.argmax(corr))] / frame_rate)


def coherence(stem: np.ndarray, mix: np.ndarray, sample_rate: int, stem_grid: BeatGrid, mix_grid: BeatGrid) -> dict[str, float]:
    """The coherence figure and its parts (see module docstring)."""
    agree = tempo_agreement(stem_grid.tempo, mix_grid.tempo)
    corr0, best_lag = envelope_correlation(stem, mix, sample_rate, mix_grid.beat_period)
    return {
        "coherence": 0.5 * agree + 0.5 * max(0.0, corr0),
        "tempo_agreement": agree,
        "envelope_corr": corr0,
        "best_lag_s": best_lag,
        "stem_tempo": float(stem_grid.tempo),
        "mix_tempo": float(mix_grid.tempo),
    }
