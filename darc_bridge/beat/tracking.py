"""Estimate the beat grid (tempo, beats, downbeats) of a drumless mix.

Drumless music has soft onsets, so the default tracker listens to two things: spectral flux
on a log-mel spectrogram with a -40 dB floor (note attacks, without the early bias that digital
silence causes) and chroma flux (chord changes). librosa's dynamic-programming tracker runs on
their sum with a pop tempo prior (60-200 BPM, centred on 120). Its beats are then cleaned and
made even: beats off a robust local line are dropped, the tempo is the least-squares slope of
beat time against beat number, gaps are filled and both ends extrapolated at that period, so
the grid always covers the whole region.

Downbeat rule: for each phase p in 0..beats_per_bar-1, bars are taken to start at the beats
with index = p (mod beats_per_bar). Two scores, each normalised by its maximum over phases, are
summed: (a) the mean bass energy (< 200 Hz) in the 100 ms after those beats and (b) the mean
chroma distance between consecutive bars. The phase with the largest sum starts the bar: bass
notes and chord changes land on downbeats in most pop, which works without drums.
"""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np

from darc_bridge.audio.io import Audio
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)

ANALYSIS_SR = 22050
HOP = 512
N_FFT = 2048
MIN_BPM, MAX_BPM, CENTRE_BPM = 60.0, 200.0, 120.0
DEFAULT_BPM = 120.0
START_TOLERANCE_S = 0.03
FLUX_FLOOR = 10.0 ** (-40.0 / 10.0)  # power floor relative to the loudest mel bin
SILENCE_PEAK = 10.0 ** (-60.0 / 20.0)  # below -60 dBFS there is nothing to track
METHODS = ("librosa", "beat_this")


class _TempoPrior:
    """Log-normal tempo prior (one octave wide around 120 BPM) that forbids tempi outside 60-200 BPM.

    librosa only calls `logpdf`, so this small object stands in for a scipy distribution.
    """

    def logpdf(self, bpm: np.ndarray) -> np.ndarray:
        bpm = np.asarray(bpm, dtype=float)
        with np.errstate(divide="ignore"):
            lp = -0.5 * (np.log2(np.maximum(bpm, 1e-6) / CENTRE_BPM) / 1.0) ** 2
        return np.where((bpm >= MIN_BPM) & (bpm <= MAX_BPM), lp, -np.inf)


def _to_mono(audio: Audio | np.ndarray, sample_rate: int | None) -> tuple[np.ndarray, int]:
    if isinstance(audio, Audio):
        samples, sr = audio.samples, audio.sample_rate
    else:
        if sample_rate is None:
            raise InputError("sample_rate is required when the mix is given as a numpy array")
        samples, sr = np.asarray(audio, dtype=np.float32), int(sample_rate)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.ndim != 1:
        raise InputError(f"mix must be (frames,) or (channels, frames) audio, got shape {samples.shape}")
    if not np.all(np.isfinite(samples)):
        raise InputError("mix holds NaN or infinite samples")
    return np.ascontiguousarray(samples, dtype=np.float32), int(sr)


def default_grid(duration: float, bpm: float = DEFAULT_BPM, beats_per_bar: int = 4) -> BeatGrid:
    """An even grid from 0 s: used for silence, where there is no beat to find."""
    beats = np.arange(0.0, max(duration, 1e-6), 60.0 / bpm)
    return BeatGrid(float(bpm), beats, beats[::beats_per_bar].copy(), float(duration), beats_per_bar)


def _theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Median of pairwise slopes (Theil-Sen) without scipy's confidence intervals, which cost
    ~1 ms per call; this runs once per beat."""
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    slope = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    return slope, float(np.median(y - slope * x))


def drop_outlier_beats(beats: np.ndarray, period: float, reach: int = 8) -> np.ndarray:
    """Drop beats off the line through their neighbours: the tracker's DP sometimes bends away for a
    few beats, mostly at the region's ends. The line is a Theil-Sen fit (robust to a few bad beats)
    over +-`reach` beats, so slow tempo drift is followed; dropped beats are re-filled evenly by
    `regularize_beats`, so a false alarm costs at most the tracker's own jitter."""
    if len(beats) < 5:
        return beats
    index = np.concatenate([[0.0], np.cumsum(np.maximum(np.round(np.diff(beats) / period), 1.0))])
    tolerance = max(0.1 * period, 0.035)
    keep = np.ones(len(beats), dtype=bool)
    for i in range(len(beats)):
        nb = [j for j in range(max(0, i - reach), min(len(beats), i + reach + 1)) if j != i]
        slope, intercept = _theil_sen(index[nb], beats[nb])
        keep[i] = abs(slope * index[i] + intercept - beats[i]) <= tolerance
    return beats[keep]


def regularize_beats(beats: np.ndarray, duration: float, period: float | None = None) -> np.ndarray:
    """Fill gaps and extrapolate both ends at the median period so beats cover [0, duration) evenly."""
    beats = np.sort(np.asarray(beats, dtype=float))
    beats = beats[(beats >= 0) & (beats < duration)]
    if period is None:
        if len(beats) < 2:
            raise ValueError("need two beats or a period to regularise")
        period = float(np.median(np.diff(beats)))
    if len(beats) == 0:
        return np.arange(0.0, duration, period)
    filled = [beats[0]]
    for b in beats[1:]:
        gap = b - filled[-1]
        if gap < 0.5 * period:  # a doubled detection: keep the first
            continue
        prev, n_missing = filled[-1], max(int(round(gap / period)) - 1, 0)
        filled.extend(prev + gap * (k + 1) / (n_missing + 1) for k in range(n_missing))
        filled.append(b)
    # a beat up to START_TOLERANCE_S before the region start is taken as on it (DAW selections snap to beats)
    head = np.arange(filled[0] - period, -START_TOLERANCE_S, -period)[::-1]
    head = np.maximum(head, 0.0)
    tail = np.arange(filled[-1] + period, duration, period)
    return np.concatenate([head, np.array(filled), tail])


def _downbeat_phase(
    beats: np.ndarray, low_power: np.ndarray, chroma: np.ndarray, sr: int, beats_per_bar: int
) -> int:
    """The phase (0..beats_per_bar-1) whose bars start with the most bass energy and the clearest chord changes."""
    if len(beats) < beats_per_bar or beats_per_bar <= 1:
        return 0
    n = chroma.shape[1]
    frames = np.clip(librosa.time_to_frames(beats, sr=sr, hop_length=HOP), 0, n - 1)
    reach = max(2, int(0.1 * sr / HOP))  # the 100 ms after each beat
    bass = np.array([low_power[f: f + reach].mean() for f in frames])
    bounds = np.append(frames, n)
    spans = np.stack([chroma[:, a: max(b, a + 1)].mean(axis=1) for a, b in zip(bounds[:-1], bounds[1:], strict=True)])
    phases = np.arange(len(beats)) % beats_per_bar
    bass_score = np.array([bass[phases == p].mean() for p in range(beats_per_bar)])
    change_score = np.zeros(beats_per_bar)
    for p in range(beats_per_bar):
        # bars that start at phase p: mean chroma per bar, then distance between neighbouring bars
        starts = np.arange(p, len(beats), beats_per_bar)
        bars = np.stack([spans[s: s + beats_per_bar].mean(axis=0) for s in starts])
        bars /= np.linalg.norm(bars, axis=1, keepdims=True) + 1e-9
        if len(bars) >= 2:
            change_score[p] = float(np.mean(1.0 - np.sum(bars[1:] * bars[:-1], axis=1)))
    score = bass_score / (bass_score.max() + 1e-12) + change_score / (change_score.max() + 1e-12)
    log.debug("downbeat phase scores: bass %s, chord change %s", np.round(bass_score, 4), np.round(change_score, 4))
    return int(np.argmax(score))


def _track_librosa(y: np.ndarray, sr: int, duration: float, beats_per_bar: int) -> BeatGrid:
    if y.shape[0] < N_FFT:  # very short regions: pad so the STFT has a full frame
        y = np.pad(y, (0, N_FFT - y.shape[0]))
    stft = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
    mel = librosa.feature.melspectrogram(S=stft, sr=sr, n_mels=64, fmax=sr / 2)
    # a floor 40 dB under the peak: a note's first sliver entering the window out of digital
    # silence would otherwise look like a big jump and pull beats ~40 ms early
    log_mel = librosa.power_to_db(mel + FLUX_FLOOR * mel.max(), ref=np.max)
    flux = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=HOP, lag=1, max_size=3, center=False)  # frames are centred already
    chroma = librosa.feature.chroma_stft(S=stft, sr=sr, hop_length=HOP, tuning=0.0)
    chroma_flux = np.concatenate([[0.0], np.maximum(np.diff(chroma, axis=1), 0.0).sum(axis=0)])
    env = flux / (flux.max() + 1e-9) + 0.5 * chroma_flux / (chroma_flux.max() + 1e-9)
    if not np.any(env > 0):
        log.warning("no onsets found in the mix: using a default %.0f BPM grid", DEFAULT_BPM)
        return default_grid(duration, DEFAULT_BPM, beats_per_bar)

    prior = _TempoPrior()
    tempo = float(np.atleast_1d(librosa.feature.tempo(onset_envelope=env, sr=sr, hop_length=HOP, prior=prior))[0])
    _, beat_frames = librosa.beat.beat_track(
        onset_envelope=env, sr=sr, hop_length=HOP, bpm=tempo, tightness=200, trim=True, units="frames"
    )
    beats = librosa.frames_to_time(beat_frames, sr=sr, hop_length=HOP)
    period = 60.0 / tempo
    if len(beats) >= 4:
        beats = drop_outlier_beats(beats, float(np.median(np.diff(beats))))
    if len(beats) >= 4:
        # least-squares slope of beat time against beat number: sub-frame tempo precision
        # each interval rounded on its own: the tracker's beats sit on whole frames, so the median
        # interval can be a frame off the true period, which rounding elapsed time would compound
        index = np.concatenate([[0.0], np.cumsum(np.maximum(np.round(np.diff(beats) / np.median(np.diff(beats))), 1.0))])
        fitted = float(np.polyfit(index, beats, 1)[0])
        if abs(fitted - period) <= 0.1 * period:  # else the tracker drifted from its own tempo
            period = fitted
    elif len(beats) == 0:  # start the grid on the strongest early onset
        first = int(np.argmax(env[: max(1, int(period * sr / HOP))]))
        beats = np.array([librosa.frames_to_time(first, sr=sr, hop_length=HOP)])
    beats = regularize_beats(beats, duration, period)

    centres = librosa.mel_frequencies(n_mels=mel.shape[0] + 2, fmax=sr / 2)[1:-1]
    low_band = mel[: max(1, int(np.sum(centres < 200.0)))]
    phase = _downbeat_phase(beats, low_band.sum(axis=0), chroma, sr, beats_per_bar)
    return BeatGrid(60.0 / period, beats, beats[phase::beats_per_bar].copy(), duration, beats_per_bar)


def _track_beat_this(y: np.ndarray, sr: int, duration: float, checkpoint: str | None, beats_per_bar: int) -> BeatGrid:
    """beat_this from a local checkpoint only: nothing here may download weights."""
    if not checkpoint:
        raise InputError("beat method 'beat_this' needs a local checkpoint path (beat_this_checkpoint); "
                         "downloading checkpoints is not supported")
    path = Path(checkpoint)
    if not path.is_file():
        raise InputError(f"beat_this checkpoint not found: {path}")
    try:
        from beat_this.inference import Audio2Beats
    except ImportError as exc:
        raise InputError("beat method 'beat_this' needs the beat-this package: pip install 'darc-bridge[beat-this]'") \
            from exc
    try:
        tracker = Audio2Beats(checkpoint_path=str(path), device="cpu", dbn=False)
        beats, downbeats = tracker(y, sr)
    except Exception as exc:
        raise InputError(f"beat_this could not use checkpoint {path}: {exc}") from exc
    beats = np.asarray(beats, dtype=float)
    downbeats = np.asarray(downbeats, dtype=float)
    if len(beats) < 2:
        log.warning("beat_this found fewer than two beats: using a default %.0f BPM grid", DEFAULT_BPM)
        return default_grid(duration, DEFAULT_BPM, beats_per_bar)
    period = float(np.median(np.diff(beats)))
    even = regularize_beats(beats, duration, period)
    if len(downbeats):
        # keep beat_this's bar phase: the regular beat nearest its first downbeat starts a bar
        first = int(np.argmin(np.abs(even - downbeats[0])))
        phase = first % beats_per_bar
    else:
        phase = 0
    return BeatGrid(60.0 / period, even, even[phase::beats_per_bar].copy(), duration, beats_per_bar)


def estimate_beat_grid(
    audio: Audio | np.ndarray,
    sample_rate: int | None = None,
    method: str = "librosa",
    beat_this_checkpoint: str | None = None,
    beats_per_bar: int = 4,
) -> BeatGrid:
    """Tempo, beats and downbeats of a mix region; beats always cover the region evenly.

    Near-silent audio (peak below -60 dBFS) gets a default 120 BPM grid and a warning.
    """
    if method not in METHODS:
        raise InputError(f"unknown beat method {method!r}; choose one of: {', '.join(METHODS)}")
    if not 1 <= int(beats_per_bar) <= 16:
        raise InputError(f"beats_per_bar must be between 1 and 16, got {beats_per_bar}")
    y, sr = _to_mono(audio, sample_rate)
    duration = y.shape[0] / float(sr)
    if duration <= 0:
        raise InputError("mix holds no audio")
    if method == "beat_this":
        return _track_beat_this(y, sr, duration, beat_this_checkpoint, beats_per_bar)
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        log.warning("mix is near-silent: using a default %.0f BPM grid", DEFAULT_BPM)
        return default_grid(duration, DEFAULT_BPM, beats_per_bar)
    if sr != ANALYSIS_SR:
        y = librosa.resample(y, orig_sr=sr, target_sr=ANALYSIS_SR, res_type="soxr_mq")
    if duration < 2.0 * 60.0 / MIN_BPM:
        log.info("mix region is short (%.1fs): the tempo estimate may be unreliable", duration)
    return _track_librosa(y, ANALYSIS_SR, duration, beats_per_bar)


def warm_up() -> None:
    """Track beats on two seconds of clicks: librosa compiles or loads its numba kernels on first
    use (seconds), which a resident engine should pay at load time, not in the first job."""
    clicks = np.zeros(2 * 22050, dtype=np.float32)
    clicks[::11025] = 1.0
    estimate_beat_grid(clicks, 22050)
