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
from scipy.ndimage import uniform_filter1d
from scipy.signal import find_peaks
from sklearn.decomposition import NMF, non_negative_factorization
from threadpoolctl import threadpool_limits

from darc_bridge.audio.io import SILENCE_DBFS, Audio
from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import Onset, RhythmFeatures, RhythmSettings

log = logging.getLogger(__name__)

# Same shape as darc_bridge.engines.base.ProgressCallback; not imported from there because the
# engines import this module.
ProgressCallback = Callable[[str, float], None]

MAX_FIT_FRAMES = 1500  # longer takes (> 30 s) fit the bases on evenly spaced frames: same sounds, less work
TRANSFORM_MAX_ITER = 20  # activations of a long take under fixed bases: converged within this (measured)
REFINE_BEFORE_S = 0.015  # onset refinement looks this far before the flux peak...
REFINE_AFTER_S = 0.03  # ...and this far after it
CLASS_RISE_WINDOW = 2  # model frames (20 ms) before/after an onset where a class' rise is measured
SECOND_CLASS_RISE = 0.45  # a further class at the same onset must rise this much (of its own scale)...
SECOND_CLASS_SHARE = 0.15  # ...and carry this share of the onset's whole rise (not a sliver of one sound)
SINGLE_TIMBRE_SIMILARITY = 0.9  # cosine of 9 in 10 onset spectra to the typical one (measured: one
# sound >= 0.97 even clipped or in noise; beatbox and taps <= 0.76)
REDUNDANT_CORR = 0.6  # classes whose rises correlate this much over the take are one sound split by NMF
NOISE_FLOOR_FACTOR = 2.0  # noise magnitudes wobble around their median; clear most of that wobble
MERGE_CORR = 0.3  # components whose rises at the onsets correlate this much are one sound, split
MERGE_OCTAVES = 0.5  # ...as are components whose centroids lie this close (kick, snare, hat: >= 2 octaves apart)
SLOT_ANCHORS_HZ = np.array([150.0, 1500.0, 7000.0])  # typical centroids of kick-, snare-, hat-like sounds
LEAD_IN_S = 0.1  # silence put before every take (a whole number of 50 Hz frames)
FLUX_PER_THRESHOLD = 0.25  # flux peaks must pass onset_threshold x this of the strongest hit (0.2 -> 5%)


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


def _sounding(h: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Components that carry a real share of the rise at two onsets or more. One that does not (a
    pink-noise rumble, a hum left after the floor removal) is not a sound of the take; left in,
    it takes a slot and pushes a "boom-pff" up into the snare and hat classes."""
    rises = _rises(cells, h)
    share = rises / (rises.sum(axis=1, keepdims=True) + 1e-12)
    keep = (share >= SECOND_CLASS_SHARE).sum(axis=0) >= 2  # once may be a noise burst taken for a hit
    return keep if keep.any() else np.ones(h.shape[0], dtype=bool)


def _merge_split_sounds(h: np.ndarray, centroids: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge components that are one sound split by NMF (attack and body, or hit-to-hit variation),
    as happens when the prompt holds fewer distinct sounds than classes. Two components are one
    sound when their rises at the onsets correlate (attack and body move together) or when their
    bases' centroids lie within MERGE_OCTAVES (two takes on one hiss: their rises alternate, so
    they do not correlate). Complete linkage: a component joins a group only if it is one sound
    with every member, so a chain of weak links cannot fold all three sounds into one.
    Returns the merged rows and their energy-weighted centroids, low -> high."""
    k = h.shape[0]
    floor, scale = _row_scale(h)
    corr = _rise_correlation(_rises(cells, h) / scale)
    log_c = np.log2(centroids)
    same = (corr >= MERGE_CORR) | (np.abs(log_c[:, None] - log_c[None, :]) < MERGE_OCTAVES)
    groups: list[list[int]] = []
    for a in range(k):
        home = next((g for g in groups if all(same[a, b] for b in g)), None)
        if home is None:
            groups.append([a])
        else:
            home.append(a)
    energy = h.sum(axis=1) + 1e-12
    rows = np.stack([h[idx].sum(axis=0) for idx in groups])
    cents = np.array([2.0 ** np.average(log_c[idx], weights=energy[idx]) for idx in groups])
    order = np.argsort(cents, kind="stable")
    return rows[order], cents[order]


def _place_in_slots(rows: np.ndarray, cents: np.ndarray, n_classes: int) -> np.ndarray:
    """With fewer distinct sounds than the 3 default classes, put each sound in the kick, snare or
    hat slot nearest its centroid (order kept): a "boom-pff" beatbox stays kick and snare instead
    of sliding up to snare and hat. Unused slots stay empty."""
    out = np.zeros((n_classes, rows.shape[1]), dtype=np.float32)
    log_anchor = np.log2(SLOT_ANCHORS_HZ)
    best = min(
        itertools.combinations(range(n_classes), len(rows)),
        key=lambda slots: float(np.abs(np.log2(cents) - log_anchor[list(slots)]).sum()),
    )
    out[list(best)] = rows
    return out


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


def _onset_envelope(mag: np.ndarray) -> np.ndarray:
    """Spectral flux of the log-compressed magnitude, with its steady noise floor removed, 0..~1."""
    log_mag = np.log1p(100.0 * mag / (mag.max() + 1e-12))
    flux = np.maximum(0.0, np.diff(log_mag, axis=1, prepend=log_mag[:, :1])).mean(axis=0)
    floor = np.median(flux)
    spread = np.median(np.abs(flux - floor)) + 1e-9
    env = np.maximum(flux - floor - 3.0 * spread, 0.0)  # noise frames wobble within a few spreads
    top = np.max(env)
    return env / top if top > 0 else env


def _pick_onsets(env: np.ndarray, settings: RhythmSettings, fps: float) -> np.ndarray:
    """Frames of flux peaks above the threshold and above their local average, at least
    `min_onset_gap_s` apart. (scipy rather than librosa.util.peak_pick, whose numba kernel
    crashes the interpreter with numpy 2.4 / numba 0.68.)"""
    delta = settings.onset_threshold * FLUX_PER_THRESHOLD
    distance = max(1, int(round(settings.min_onset_gap_s * fps)))
    peaks, _ = find_peaks(env, height=delta, distance=distance)
    local_mean = uniform_filter1d(env, size=max(3, int(0.2 * fps)), mode="nearest")
    return peaks[env[peaks] >= local_mean[peaks] + delta]


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
        lo = max(0, int((t - REFINE_BEFORE_S) * sr / hop))
        hi = min(n_frames, int((t + REFINE_AFTER_S) * sr / hop) + 1)
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


def _single_timbre(mag: np.ndarray, frames: np.ndarray, power: float) -> bool:
    """True when nearly every onset has the same spectral shape (a pen, one click, one tap).

    NMF must still spread such a prompt over K components; the hits are then labelled with one
    class each and never counted twice.
    """
    if frames.size < 2:
        return True
    comp = mag**power
    w = CLASS_RISE_WINDOW
    snaps = np.stack(
        [comp[:, f : f + w + 1].max(axis=1) - comp[:, max(0, f - w) : f + 1].min(axis=1) for f in frames]
    ).clip(0.0)
    snaps /= np.linalg.norm(snaps, axis=1, keepdims=True) + 1e-12
    typical = np.median(snaps, axis=0)
    typical /= np.linalg.norm(typical) + 1e-12
    return float(np.percentile(snaps @ typical, 10)) >= SINGLE_TIMBRE_SIMILARITY


def _rise_correlation(rises: np.ndarray) -> np.ndarray:
    """Correlation of the classes' rises over all onsets (identity when too few onsets). A class
    that never rises (an empty slot) correlates with nothing, and does not blank the others."""
    k = rises.shape[1]
    live = rises.std(axis=0) > 0
    corr = np.eye(k)
    if k == 1 or rises.shape[0] < 3 or live.sum() < 2:
        return corr
    corr[np.ix_(live, live)] = np.corrcoef(rises[:, live].T)
    return corr


def _rises(cells: np.ndarray, h: np.ndarray) -> np.ndarray:
    """(onsets x classes): how much each class' activation climbs around each onset frame."""
    n, w = h.shape[1], CLASS_RISE_WINDOW
    rises = np.zeros((len(cells), h.shape[0]), dtype=np.float32)
    for i, g in enumerate(cells):
        after = h[:, g : min(n, g + w + 1)].max(axis=1)
        before = h[:, max(0, g - w) : g + 1].min(axis=1)
        rises[i] = np.maximum(after - before, 0.0)
    return rises


def _classify(cells: np.ndarray, h: np.ndarray, single: bool = False) -> list[tuple[int, int, float]]:
    """(onset index, class, strength) per hit; a second class only for a truly simultaneous hit.

    `cells` are the onsets' frames in `h`. Strength is the class' activation peak on its own
    0..1 scale: how hard this hit is next to the loudest hits of that class.
    """
    floor, scale = _row_scale(h)
    norm = np.clip((h - floor[:, None]) / scale[:, None], 0.0, 1.0)
    w = CLASS_RISE_WINDOW
    rises = _rises(cells, h)
    rises_norm = rises / scale
    corr = _rise_correlation(rises_norm)
    out: list[tuple[int, int, float]] = []
    for i, (g, rise, rise_norm) in enumerate(zip(cells, rises, rises_norm, strict=True)):
        primary = int(np.argmax(rise))
        out.append((i, primary, float(norm[primary, g : g + w + 1].max())))
        used = [primary]
        for k in [] if single else np.argsort(-rise_norm):
            k = int(k)
            if (
                k in used
                or rise_norm[k] < SECOND_CLASS_RISE
                or rise[k] < SECOND_CLASS_SHARE * rise.sum()
                or any(corr[k, u] >= REDUNDANT_CORR for u in used)
            ):
                continue
            used.append(k)
            out.append((i, k, float(norm[k, g : g + w + 1].max())))
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
    Classes run low -> high by the spectral centroid of their NMF basis (kick, snare, hat for K=3).
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
    mag, freqs = _spectrogram(y, settings)
    fps = settings.sample_rate / settings.hop_length
    report("rhythm", 0.3)
    n_lead = int(round(lead_s * settings.frame_rate))
    n_out = max(1, int(round(duration * settings.frame_rate))) + n_lead
    # NMF runs at the model's frame rate: the activations are needed there anyway, and it is
    # 1.7x less work than at the STFT hop.
    clean = _pool_frames(_remove_noise_floor(mag), fps, settings.frame_rate, n_out)
    w, h = _decompose(clean, settings)
    order = _class_order(w, freqs, settings)
    h = h[order]
    report("rhythm", 0.8)
    env = _onset_envelope(mag)
    onset_frames = _pick_onsets(env, settings, fps)
    cells = np.minimum((onset_frames * settings.frame_rate / fps).astype(int), n_out - 1)
    single = _single_timbre(clean, cells, settings.magnitude_power)
    if settings.n_classes == len(SLOT_ANCHORS_HZ) and settings.order_by == "centroid" and not single and len(cells) >= 3:
        sounding = _sounding(h, cells)
        merged, cents = _merge_split_sounds(h[sounding], _centroids_hz(w, freqs, settings)[order][sounding], cells)
        if len(merged) < settings.n_classes:
            h = _place_in_slots(merged, cents, settings.n_classes)
    times = np.maximum(_refine_times(y, settings.sample_rate, onset_frames / fps) - lead_s, 0.0)
    onsets = [
        Onset(round(float(times[i]), 4), c, round(s, 4)) for i, c, s in _classify(cells, h, single) if times[i] < duration
    ]
    h = h[:, n_lead:]
    floor, scale = _row_scale(h)
    acts = np.clip((h - floor[:, None]) / scale[:, None], 0.0, 1.0).astype(np.float32)
    report("rhythm", 1.0)
    log.debug("rhythm: %d onsets in %.2fs over %d classes", len(onsets), duration, settings.n_classes)
    return RhythmFeatures(acts, sorted(onsets, key=lambda o: (o.time, o.cls)), settings.frame_rate, duration, settings)
