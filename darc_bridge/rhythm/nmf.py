"""DARC's rhythm step: NMF of the prompt's magnitude spectrogram, keeping only the activations.

Why this shape:
- Only H (class x time) is kept and W (the spectral bases) is thrown away, so the prompt's
  timbre (a voice, a table) never reaches the model: only *when* and *which kind* of hit.
- Classes are ordered low -> high by the spectral centroid of each basis. DARC's summary speaks
  of energy, and librosa's `decompose(sort=True)` orders by the peak bin; the centroid is robust
  for kick/snare/hat-like sounds whose peaks wander (a "ts" hiss has no stable peak bin).
- Onset *times* come from the spectral flux of the whole signal (a hit split across several
  NMF components is still found once), then are pinned to the attack on a 1.5 ms level curve.
  The *class* of each onset is the component whose activation rises most there. A second class
  is added at the same time (kick and hat together) only when it rises strongly on its own
  scale, carries a real share of the rise, and is not a component that always moves with the
  first; a prompt whose hits all share one spectrum (a single click) gets one class per hit.
- A take with fewer distinct sounds than the 3 classes ("pff-ts", kick and hat) makes NMF split
  one sound over two components; components that rise together, or whose bases' centroids lie
  within half an octave, are merged (complete linkage) and the sounds put in the kick, snare or
  hat slot nearest their centroid; a component that leads no hits (a rumble) is left out first.
  Measured with darc_bridge.rhythm.robustness on timbre families the extractor was not tuned
  on (docs/rhythm.md).
- Level, sample rate, channel count and a steady noise floor are normalised away first:
  thresholds are relative to a noise-floor estimate, never absolute.
- Speed: NMF runs on frames pooled to the 50 Hz model rate, with one BLAS thread; takes over
  30 s fit the bases on evenly spaced frames and then solve the activations under them.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Callable

import librosa
import numpy as np
from sklearn.decomposition import NMF, non_negative_factorization
from threadpoolctl import threadpool_limits

from darc_bridge.audio.io import SILENCE_DBFS, Audio
from darc_bridge.errors import InputError
from darc_bridge.rhythm import onset_model
from darc_bridge.rhythm.features import Onset, RhythmFeatures, RhythmSettings

log = logging.getLogger(__name__)

# Same shape as darc_bridge.engines.base.ProgressCallback; not imported from there because the
# engines import this module.
ProgressCallback = Callable[[str, float], None]

MAX_FIT_FRAMES = 1000  # longer takes (> 20 s) fit the bases on evenly spaced frames: same sounds, less work
TRANSFORM_MAX_ITER = 20  # activations of a long take under fixed bases: converged within this (measured)
REFINE_S = 0.01  # onset refinement looks one model frame (10 ms) either side of the model's onset frame:
# the model places a hit within a frame; a wider search strays to the swell of a soft hat under a tail
CLASS_RISE_WINDOW = 2  # model frames (20 ms) before/after an onset where a component's rise is measured
NOISE_FLOOR_FACTOR = 2.0  # noise magnitudes wobble around their median; clear most of that wobble
LEAD_IN_S = 0.1  # silence put before every take (a whole number of 50 Hz frames)
CLASS_PROBABILITY = 0.5  # a further class at one onset (kick and hat together): the model says "yes"
ONE_SOUND_SIMILARITY = 0.98  # cosine of 9 in 10 hit spectra to the typical one; measured: one click
# sound 0.994-0.995 at 16-48 kHz; beatbox 0.56, taps 0.79, kits and voices <= 0.96


def _mono(audio: Audio | np.ndarray, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from an Audio or a (frames,) / (channels, frames) array."""
    if isinstance(audio, Audio):
        return np.asarray(audio.mono(), dtype=np.float32), int(audio.sample_rate)
    if sample_rate is None:
        raise InputError("prompt: a sample rate is needed with raw samples")
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        # (channels, frames) by convention; accept (frames, channels) from soundfile too
        x = x.mean(axis=0) if x.shape[0] <= x.shape[1] else x.mean(axis=1)
    elif x.ndim != 1:
        raise InputError(f"prompt: expected mono or (channels, frames) samples, got shape {x.shape}")
    return x, int(sample_rate)


def _prepare(x: np.ndarray, sr: int, settings: RhythmSettings) -> np.ndarray:
    """Check the samples, bring them to the analysis rate and a peak of 1."""
    if sr < 4000:
        raise InputError(f"prompt: sample rate {sr} Hz is too low (at least 4000 Hz needed)")
    if x.size < settings.n_fft or x.size / sr < 0.05:
        raise InputError(f"prompt is too short: {x.size / sr:.3f}s")
    if not np.all(np.isfinite(x)):
        raise InputError("prompt holds invalid samples (NaN or infinity)")
    # a DC offset (many audio interfaces have one) steps up out of the lead-in silence and at each
    # loop of the take: that step read as a kick at 0 s
    x = x - np.float32(np.mean(x, dtype=np.float64))
    peak = float(np.max(np.abs(x)))
    if peak <= 0 or 20 * np.log10(peak) < SILENCE_DBFS:
        raise InputError(f"prompt is silent (peak below {SILENCE_DBFS:.0f} dBFS): nothing to follow")
    x = x / peak  # a whispered take and a clipped one give the same features
    if sr != settings.sample_rate:
        x = librosa.resample(x, orig_sr=sr, target_sr=settings.sample_rate, res_type="soxr_hq")
    return np.ascontiguousarray(x, dtype=np.float32)


def _spectrogram(y: np.ndarray, settings: RhythmSettings) -> tuple[np.ndarray, np.ndarray]:
    """Magnitude spectrogram (bins x frames) and each bin's centre frequency."""
    mag = np.abs(librosa.stft(y, n_fft=settings.n_fft, hop_length=settings.hop_length)).astype(np.float32)
    if settings.n_mels > 0:
        mag = librosa.feature.melspectrogram(S=mag, sr=settings.sample_rate, n_mels=settings.n_mels, power=1.0)
        freqs = librosa.mel_frequencies(n_mels=settings.n_mels, fmax=settings.sample_rate / 2)
    else:
        freqs = librosa.fft_frequencies(sr=settings.sample_rate, n_fft=settings.n_fft)
    return mag.astype(np.float32), freqs


def _remove_noise_floor(mag: np.ndarray) -> np.ndarray:
    """Subtract each bin's steady floor (its median over time, scaled): hiss and hum would
    otherwise take an NMF component of their own and push two drum sounds into one."""
    step = max(1, mag.shape[1] // 4000)  # a few thousand frames pin a median; long takes skip some
    floor = np.median(mag[:, ::step], axis=1, keepdims=True)
    return np.maximum(mag - NOISE_FLOOR_FACTOR * floor, 0.0)


def _decompose(mag: np.ndarray, settings: RhythmSettings) -> tuple[np.ndarray, np.ndarray]:
    """NMF: W (bins x K) with unit-sum columns, H (K x frames) in the spectrogram's units."""
    model = NMF(
        n_components=settings.n_classes,
        init="nndsvda",
        solver="mu",
        beta_loss=settings.nmf_beta_loss,
        max_iter=settings.nmf_max_iter,
        tol=1e-4,
        random_state=settings.seed,
    )
    frames = mag.T ** settings.magnitude_power + 1e-9  # KL needs strictly positive data to be stable on digital silence
    stride = int(np.ceil(frames.shape[0] / MAX_FIT_FRAMES))
    # The products here are thin (K <= 8 columns): threaded BLAS spends far longer waking its
    # threads than multiplying (measured 30x slower on 2 cores), so one thread it is.
    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore")  # ConvergenceWarning: capped iterations are a speed choice
        if stride > 1:
            model.fit(frames[::stride])
            h, _, _ = non_negative_factorization(
                frames,
                H=model.components_,
                n_components=settings.n_classes,
                update_H=False,
                solver="mu",
                beta_loss=settings.nmf_beta_loss,
                max_iter=TRANSFORM_MAX_ITER,
                tol=0.0,  # no convergence checks: each costs as much as an iteration
            )
        else:
            h = model.fit_transform(frames)
    w = model.components_.T.astype(np.float32)
    norms = w.sum(axis=0) + 1e-12
    return w / norms, (h.T * norms[:, None]).astype(np.float32)


def _centroids_hz(w: np.ndarray, freqs: np.ndarray, settings: RhythmSettings) -> np.ndarray:
    """Each basis' power-weighted spectral centroid on a log-frequency axis, in Hz."""
    weights = np.maximum(w, 0.0) ** (2.0 / settings.magnitude_power)
    log_f = np.log2(np.maximum(freqs, 20.0))
    return 2.0 ** ((log_f[:, None] * weights).sum(axis=0) / (weights.sum(axis=0) + 1e-30))


def _class_order(w: np.ndarray, freqs: np.ndarray, settings: RhythmSettings) -> np.ndarray:
    """Component indices sorted low -> high timbre, by `settings.order_by`.

    "centroid" (default): each basis' spectral centroid on a log-frequency axis, weighted by
    power (the basis undone from its compression), so a kick with a little click stays below a
    snare. "peak": the basis' strongest bin, as librosa's decompose(sort=True) does.
    """
    if settings.order_by == "peak":
        return np.argsort(freqs[np.argmax(w, axis=0)], kind="stable")
    if settings.order_by != "centroid":
        raise ValueError(f"unknown class order {settings.order_by!r}; use 'centroid' or 'peak'")
    return np.argsort(_centroids_hz(w, freqs, settings), kind="stable")


def _refine_times(y: np.ndarray, sr: int, times: np.ndarray) -> np.ndarray:
    """Move each onset to the steepest rise of a fine-grained (1.5 ms hop) level curve near it.

    Flux on 46 ms windows fires as soon as a sharp hit enters the window, i.e. early by up to
    a few hops; the level curve pins the attack itself. Only the few milliseconds around each
    onset are measured, so a long take costs no more than its onsets.
    """
    hop = max(1, sr // 700)
    pad = 4 * hop
    ypad = np.pad(y.astype(np.float64), pad)
    n_frames = y.size // hop + 1
    refined = times.copy()
    for i, t in enumerate(times):
        lo = max(0, int((t - REFINE_S) * sr / hop))
        hi = min(n_frames, int((t + REFINE_S) * sr / hop) + 1)
        if hi - lo < 2:
            continue
        start = (lo - 1) * hop + pad - 2 * hop  # window of frame lo-1, centred on its frame time
        seg = ypad[start : start + (hi - lo) * hop + 4 * hop]
        windows = np.lib.stride_tricks.sliding_window_view(seg, 4 * hop)[::hop][: hi - lo + 1]
        level = 10.0 * np.log10(np.mean(windows**2, axis=1) + 1e-10)
        refined[i] = (lo + int(np.argmax(np.diff(level))) + 1) * hop / sr  # + 1: the frame leads
    return refined


def _row_scale(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise floor and robust top of each activation row, so rows compare as 0..1."""
    floor = np.median(h, axis=1)
    top = np.percentile(h, 99.5, axis=1)
    top = np.where(top - floor > 0.05 * (h.max(axis=1) - floor), top, h.max(axis=1))
    return floor, np.maximum(top - floor, 1e-9)


def _rises(cells: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(onsets x classes): how much each class' activation climbs around each onset frame."""
    n, w = h.shape[1], CLASS_RISE_WINDOW
    rises = np.zeros((len(cells), h.shape[0]), dtype=np.float32)
    for i, g in enumerate(cells):
        after = h[:, g : min(n, g + w + 1)].max(axis=1)
        before = h[:, max(0, g - w) : g + 1].min(axis=1)
        rises[i] = np.maximum(after - before, 0.0)
    return rises


def _pick_onsets(prob: np.ndarray, threshold: float, gap_frames: int) -> np.ndarray:
    """Frames where the onset probability peaks above `threshold`, taken in time order: a peak
    within `gap_frames` after an accepted one is the same hit (a flam's second stroke, a hit's
    reverberant swell) and is dropped, so a flam is reported once, at its first stroke."""
    p = np.pad(prob, 1)
    peaks = np.flatnonzero((p[1:-1] >= threshold) & (p[1:-1] >= p[:-2]) & (p[1:-1] > p[2:]))
    kept: list[int] = []
    for f in peaks:
        if not kept or f - kept[-1] >= gap_frames:
            kept.append(int(f))
    return np.array(kept, dtype=int)


def _one_sound(base: np.ndarray, frames: np.ndarray) -> bool:
    """True when nearly every hit has the same spectrum (a pen, one click): the model may find such
    a sound ambiguous between two classes, but it is one sound and each hit is reported once.
    Spectra are the onset model's own above-background mel bands over the hit's first 40 ms."""
    if frames.size < 2:
        return True
    bands = base.shape[0] // 2
    snaps = np.stack([base[:bands, f: f + 4].max(axis=1) for f in frames]).clip(0.0)
    snaps /= np.linalg.norm(snaps, axis=1, keepdims=True) + 1e-12
    typical = np.median(snaps, axis=0)
    typical /= np.linalg.norm(typical) + 1e-12
    return float(np.percentile(snaps @ typical, 10)) >= ONE_SOUND_SIMILARITY


def _hit_classes(probs: np.ndarray, frames: np.ndarray, one_sound: bool) -> list[list[int]]:
    """Classes (0 kick, 1 snare, 2 hat) of each onset: the likeliest, and any other the model also
    calls present (kick and hat struck together), unless the take is one sound."""
    n = probs.shape[0]
    out = []
    for f in frames:
        pc = probs[max(0, f - 1): min(n, f + 2), 1:4].max(axis=0)
        best = int(np.argmax(pc))
        out.append(sorted([best] + ([] if one_sound else
                                    [c for c in range(3) if c != best and pc[c] >= CLASS_PROBABILITY])))
    return out


def _assign_components(h: np.ndarray, cells: np.ndarray, labels: list[list[int]], n_classes: int) -> np.ndarray:
    """Rows of H for the model's classes: each NMF component goes to the class at whose onsets it
    rises most (its share of its own rise). With every class heard, the best one-to-one assignment
    (K = 3 components, 3 classes) keeps every row alive; with fewer, a class the take never plays
    keeps an empty row. H stays NMF's activations: only which row is which class comes from the model."""
    k = h.shape[0]
    rises = _rises(cells, h)
    onehot = np.zeros((len(cells), n_classes), dtype=np.float32)
    for i, cls in enumerate(labels):
        onehot[i, cls] = 1.0
    affinity = (rises.T @ onehot) / (rises.sum(axis=0)[:, None] + 1e-12)  # (K x classes)
    heard = onehot.sum(axis=0) > 0
    if k == n_classes and heard.all():
        best = max(itertools.permutations(range(n_classes)),
                   key=lambda perm: float(sum(affinity[c, perm[c]] for c in range(k))))
        home = list(best)
    else:
        home = [int(np.argmax(np.where(heard, affinity[c], -1.0))) for c in range(k)]
    out = np.zeros((n_classes, h.shape[1]), dtype=np.float32)
    for c in range(k):
        out[home[c]] += h[c]
    return out


def _pool_frames(x: np.ndarray, fps: float, frame_rate: float, n_out: int) -> np.ndarray:
    """Columns of `x` (at `fps`) pooled to `n_out` frames at `frame_rate` by their maximum:
    a 20 ms hit keeps its full height in the one model frame it falls in."""
    starts = np.minimum(np.floor(np.arange(n_out) * fps / frame_rate).astype(int), x.shape[1] - 1)
    return np.maximum.reduceat(x, starts, axis=1).astype(np.float32)


def extract_rhythm(
    audio: Audio | np.ndarray,
    sample_rate: int | None = None,
    settings: RhythmSettings = RhythmSettings(),
    progress: ProgressCallback | None = None,
) -> RhythmFeatures:
    """Timbre-free rhythm features of a prompt: class activations at 50 Hz (0..1) and onsets.

    Accepts an Audio or raw samples (mono, or (channels, frames) with `sample_rate`) at any rate.
    With K=3 the rows and onset classes are kick, snare, hat (the learned onset model's classes);
    otherwise classes run low -> high by the spectral centroid of their NMF basis.
    Raises InputError for silent, too short or invalid samples.
    """
    report = progress or (lambda stage, fraction: None)
    x, sr = _mono(audio, sample_rate)
    duration = x.size / float(sr)
    # Analyse the take as if it began after a moment of silence: a hit right at sample 0 (a loop
    # cut on the beat) then rises like any other instead of being lost at the edge.
    lead = int(round(LEAD_IN_S * settings.sample_rate))
    y = np.pad(_prepare(x, sr, settings), (lead, 0))
    lead_s = lead / settings.sample_rate
    report("rhythm", 0.1)
    shared = (settings.sample_rate, settings.n_fft, settings.hop_length, settings.n_mels) == (
        onset_model.SAMPLE_RATE, onset_model.N_FFT, onset_model.HOP, 0)
    mag, freqs = _spectrogram(y, settings)
    fps = settings.sample_rate / settings.hop_length
    report("rhythm", 0.3)
    n_lead = int(round(lead_s * settings.frame_rate))
    n_out = max(1, int(round(duration * settings.frame_rate))) + n_lead
    # NMF runs at the model's frame rate: the activations are needed there anyway, and it is
    # 1.7x less work than at the STFT hop.
    clean = _pool_frames(_remove_noise_floor(mag), fps, settings.frame_rate, n_out)
    w, h = _decompose(clean, settings)
    h = h[_class_order(w, freqs, settings)]
    report("rhythm", 0.7)
    model_sr = onset_model.SAMPLE_RATE
    y_model = y if shared or settings.sample_rate == model_sr else librosa.resample(
        y, orig_sr=settings.sample_rate, target_sr=model_sr, res_type="soxr_hq")
    model = onset_model.load_model()
    base = model.features(None, model_sr, mag) if shared else model.features(y_model, model_sr)
    probs = model.predict_base(base)
    model_fps = model_sr / onset_model.HOP
    frames = _pick_onsets(probs[:, 0], settings.onset_threshold,
                          max(1, int(round(settings.min_onset_gap_s * model_fps))))
    cells = np.minimum((frames * settings.frame_rate / model_fps).round().astype(int), n_out - 1)
    if settings.n_classes == 3:
        labels = _hit_classes(probs, frames, _one_sound(base, frames))
        h = _assign_components(h, cells, labels, 3)
    elif settings.n_classes == 1 or len(cells) == 0:
        labels = [[0] for _ in cells]
    else:  # K != 3: the component that rises most (classes beyond kick/snare/hat have no model)
        labels = [[int(np.argmax(r))] for r in _rises(cells, h)]
    times = np.maximum(_refine_times(y, settings.sample_rate, frames / model_fps) - lead_s, 0.0)
    floor, scale = _row_scale(h)
    norm = np.clip((h - floor[:, None]) / scale[:, None], 0.0, 1.0)
    w_rise = CLASS_RISE_WINDOW
    onsets = [
        Onset(round(float(times[i]), 4), c, round(float(norm[c, g: g + w_rise + 1].max()), 4))
        for i, (g, cls) in enumerate(zip(cells, labels, strict=True)) if times[i] < duration for c in cls
    ]
    h = h[:, n_lead:]
    floor, scale = _row_scale(h)
    acts = np.clip((h - floor[:, None]) / scale[:, None], 0.0, 1.0).astype(np.float32)
    report("rhythm", 1.0)
    log.debug("rhythm: %d onsets in %.2fs over %d classes", len(onsets), duration, settings.n_classes)
    return RhythmFeatures(acts, sorted(onsets, key=lambda o: (o.time, o.cls)), settings.frame_rate, duration, settings)
