"""Drum transcription of a stem into kick / snare / hat onsets, for per-class F1.

Method (partially fixed NMF, a standard drum-transcription baseline): the stem's mel magnitude
spectrogram X (bins x frames) is factorised as X ~= W H with W held fixed to hand-made spectral
templates: two per class (kick: energy around 50-100 Hz; snare: a 150-250 Hz body plus a
1-8 kHz noise band; hat: a band above 5 kHz), so only the activations H are fitted. Templates
describe broad shapes, not one kit, so any kit whose hits fall in these regions transcribes.
Each class's activation rise is log-compressed and peak-picked (scipy, darc_bridge.eval.onsets).
Cross-talk (a kick's click in the snare template, snare noise in the hat's) is removed by three
rules: a class far quieter than the loudest plays nothing; a class whose candidate hits are (nearly)
all explained as leakage (its rise below LEAK[d, c] times another class's rise at that moment)
plays nothing; and a hit much weaker, relative to its class's typical hit, than another class's
hit at the same moment is leakage too. Validated in tests/test_eval_transcribe.py
on stems rendered from known onsets, including a kit the templates were not tuned on.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
from sklearn.decomposition import non_negative_factorization

from darc_bridge.eval.onsets import pick_peaks
from darc_bridge.rhythm.features import Onset

CLASSES = ("kick", "snare", "hat")


@dataclass(frozen=True)
class TranscribeSettings:
    sample_rate: int = 22050
    n_fft: int = 1024
    hop_length: int = 256
    n_mels: int = 48
    rel_threshold: float = 0.03  # a hit's activation rise, as a fraction of the stem's largest rise (any class)
    compression: float = 10.0  # log compression of each class's rise before peak picking
    delta: float = 0.2  # peak must stand this far above its 0.1 s neighbourhood (compressed 0..1 scale)
    wait_s: float = 0.05  # minimum gap between two hits of one class
    min_strength: float = 0.25  # a hit's rise relative to the class's typical (95th percentile) hit
    bleed_ratio: float = 0.5  # a hit this much weaker (relative) than another class's hit at the same
    # moment is that hit leaking into this class's template, not a hit of its own


@dataclass
class Transcription:
    onsets: list[Onset]
    activations: np.ndarray  # (3, frames) per-class activations
    frame_rate: float

    def times(self, cls: int) -> np.ndarray:
        return np.array(sorted(o.time for o in self.onsets if o.cls == cls))


def _log_gauss(freqs: np.ndarray, centre: float, octaves: float) -> np.ndarray:
    return np.exp(-0.5 * (np.log2(np.maximum(freqs, 1.0) / centre) / octaves) ** 2)


def drum_templates(freqs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_templates, bins) unit-sum spectral shapes and the class of each row."""
    rows = [
        _log_gauss(freqs, 55.0, 0.5),
        _log_gauss(freqs, 95.0, 0.5),
        _log_gauss(freqs, 190.0, 0.4) + 0.6 * _log_gauss(freqs, 2500.0, 1.0),
        _log_gauss(freqs, 2000.0, 0.9),
        _log_gauss(freqs, 8000.0, 0.45),
        _log_gauss(freqs, 11000.0, 0.5),
    ]
    classes = np.array([0, 0, 1, 1, 2, 2])
    w = np.maximum(np.stack(rows), 1e-6)
    return w / w.sum(axis=1, keepdims=True), classes


def class_activations(audio: np.ndarray, sample_rate: int, s: TranscribeSettings) -> tuple[np.ndarray, float]:
    """(3, frames) activations of kick, snare, hat, and their frame rate."""
    y = librosa.resample(audio.astype(np.float32), orig_sr=sample_rate, target_sr=s.sample_rate) \
        if sample_rate != s.sample_rate else audio.astype(np.float32)
    mel = librosa.feature.melspectrogram(y=y, sr=s.sample_rate, n_fft=s.n_fft, hop_length=s.hop_length,
                                         n_mels=s.n_mels, power=1.0, fmin=30.0)
    freqs = librosa.mel_frequencies(n_mels=s.n_mels, fmin=30.0, fmax=s.sample_rate / 2)
    w, classes = drum_templates(freqs)
    acts_t, _, _ = non_negative_factorization(
        mel.T.astype(np.float64) + 1e-9, H=w, n_components=w.shape[0], update_H=False,
        solver="mu", beta_loss="kullback-leibler", max_iter=200,
    )
    acts = np.stack([acts_t[:, classes == c].sum(axis=1) for c in range(3)])
    return acts.astype(np.float32), s.sample_rate / s.hop_length


# LEAK[d, c]: the largest rise of class c's activation, relative to class d's, when only d plays.
# Measured on the built-in kit, the voices.py families and the beatbox voice (kick clicks leak into
# the snare template, snare noise into the hat's), with a margin.
LEAK = np.array([
    [0.0, 0.6, 0.05],
    [0.35, 0.0, 0.25],
    [0.02, 0.25, 0.0],
])


def _played(c: int, frames: np.ndarray, rises: np.ndarray, near: np.ndarray) -> bool:
    """Whether class c has hits of its own: enough candidates not explained as leakage from another
    class rising at the same moment (a kick-only stem must not grow snares from its click)."""
    others = [d for d in range(rises.shape[0]) if d != c]
    own = rises[c, frames]
    explained = np.zeros(frames.size, dtype=bool)
    for d in others:
        explained |= own < LEAK[d, c] * near[d, frames]
    return int((~explained).sum()) >= max(1, int(np.ceil(0.1 * frames.size)))


def transcribe(audio: np.ndarray, sample_rate: int, settings: TranscribeSettings = TranscribeSettings()) -> Transcription:
    """Kick (0), snare (1), hat (2) onsets of a mono drum stem."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    acts, frame_rate = class_activations(audio, sample_rate, settings)
    rises = np.maximum(np.diff(acts, axis=1, prepend=0.0), 0.0)  # a hit at 0 s rises from silence
    rises = np.stack([np.convolve(r, np.ones(2), mode="same") for r in rises])  # attacks spanning two frames
    loudest = float(rises.max()) or 1.0
    peaks: list[np.ndarray] = []
    norm = np.zeros_like(rises)
    near_raw = np.maximum.reduce([rises, np.roll(rises, 1, axis=1), np.roll(rises, -1, axis=1)])
    for c in range(3):
        own = float(rises[c].max())
        p = np.zeros(0, dtype=int)
        if own >= settings.rel_threshold * loudest:
            env = np.log1p(settings.compression * rises[c] / own) / np.log1p(settings.compression)
            p = pick_peaks(env, frame_rate, delta=settings.delta, wait_s=settings.wait_s)
            p = p[rises[c, p] >= settings.rel_threshold * loudest]
        if p.size and not _played(c, p, rises, near_raw):
            p = p[:0]  # every hit of this class is another class leaking into its template
        peaks.append(p)
        if p.size:
            norm[c] = rises[c] / max(float(np.percentile(rises[c, p], 95)), 1e-12)
    near = np.maximum.reduce([norm, np.roll(norm, 1, axis=1), np.roll(norm, -1, axis=1)])
    onsets: list[Onset] = []
    for c in range(3):
        others = np.delete(near, c, axis=0).max(axis=0)
        for f in peaks[c]:
            strength = float(norm[c, f])
            if strength >= settings.min_strength and strength >= settings.bleed_ratio * others[f]:
                onsets.append(Onset(float(f / frame_rate), c, min(1.0, strength)))
    return Transcription(onsets, acts, frame_rate)
