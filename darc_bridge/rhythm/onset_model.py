"""A small learned onset and kick/snare/hat model: when a hit starts, and which kinds of hit it is.

Why learned: the hand-set thresholds that found and classed hits on the project's own synthetic
prompts did not carry over to recorded kits, spoken vocal percussion, rooms and noise. A model fitted
to many such takes learns the one thing the thresholds were guessing: what a hit looks like against
its take's own background. It is trained only on the `tune` split of `darc_bridge.kits.splits`
(kits, GM programs, espeak voices, synthetic families and rooms) and scored on `held_out`
(`python -m darc_bridge.bench.rhythm`). A share of training takes can go through a phone's or laptop's
voice path (`CODEC_SHARE`, `--codec-share`; off in the committed model, docs/rhythm.md), and the
rise can be measured against each band's own noise (`--noise-scaled`, NOISE_RISE_FLOOR; off too).

Input, per 10 ms frame: a 40-band log-mel spectrum with each band's median over the take taken off
(the take's steady background: hiss, hum, room tone; what is left is "how far above its background"),
and its SuperFlux difference (the rise against the maximum of the neighbouring bands two frames
earlier, which ignores the slow swell of a reverberant tail and vibrato-like wobble). Seven frames of
context around each frame. Output: four sigmoid probabilities, "a hit starts here" and "a kick /
snare / hat starts here"; kick and hat together are two labels of one frame.

Model: scikit-learn's MLPClassifier (one hidden layer), trained deterministically
(`python -m darc_bridge.rhythm.onset_model`), its weights committed as JSON package data (about
350 KB) and run here in numpy: no download, no pickle, no torch.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
from scipy.ndimage import maximum_filter1d
from scipy.special import expit

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("onset_model.json")
SAMPLE_RATE = 22050  # the extractor's analysis rate
N_FFT = 1024  # 46 ms: resolves a kick's fundamental from a snare's body
HOP = 220  # 10 ms frames (100.2 per second), the usual onset-detection rate
N_MELS = 40
FMIN, FMAX = 30.0, 11000.0
LOG_GAIN = 100.0  # log10(1 + 100 x): 40 dB of range above the take's peak-normalised level
SUPERFLUX_LAG = 2  # frames: a rise is measured over 20 ms, longer than one STFT hop of smearing
SUPERFLUX_MAX_BANDS = 3  # max filter over neighbouring bands: vibrato and drifting partials do not rise
CONTEXT = (-3, -2, -1, 0, 1, 2, 3)  # frames of context: the rise before and the body after a hit
LABEL_WIDTH = 1  # frames either side of a true onset that count as "onset here" (the STFT smears it)
# Noise-scaled rise (`noise_scaled`, off in the committed model, docs/rhythm.md): each band's
# SuperFlux rise is divided by how many times its own noise moves more than this (`band_noise`).
# 0.02 log10 units: the bands of clean tune takes sit at 0-0.003 (one take's bands at up
# to 0.07), those of takes under 6 dB SNR pink noise at 0.03-0.04 (up to 0.1), so a clean band
# keeps its rise as it is and a near-silent one is not blown up (4 takes of each measured).
NOISE_RISE_FLOOR = 0.02


def mlp_over_context(m, base: np.ndarray, context: tuple[int, ...], output=expit) -> np.ndarray:
    """A standardised one-hidden-layer MLP (`m`: mean, scale, w1, b1, w2, b2) over `base`
    (features, frames) stacked at the frame offsets `context`, without building that stack: the
    first layer is a sum of shifted (frames x features) products, standardisation folded in.
    `output`: applied to the (frames x outputs) logits (sigmoids; a softmax for a joint head)."""
    w = m.w1 / m.scale[:, None]
    b = m.b1 - (m.mean / m.scale) @ m.w1
    n, d = base.shape[1], base.shape[0]
    lo, hi = -min(context), max(context)
    padded = np.ascontiguousarray(np.pad(base, ((0, 0), (lo, hi)), mode="edge").T)
    h = np.broadcast_to(b, (n, b.size)).copy()
    for i, c in enumerate(context):
        h += padded[lo + c: lo + c + n] @ w[i * d:(i + 1) * d]
    return output(np.maximum(h, 0.0) @ m.w2 + m.b2)


@dataclass(frozen=True)
class OnsetModel:
    """Standardisation and MLP weights (one hidden ReLU layer, sigmoid outputs)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    noise_scaled: bool = False  # trained on `base_features(..., noise_scaled=True)`

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(frames x features) -> (frames x 4) probabilities: onset, kick, snare, hat."""
        z = (x - self.mean) / self.scale
        h = np.maximum(z @ self.w1 + self.b1, 0.0)
        return expit(h @ self.w2 + self.b2)

    def predict_base(self, base: np.ndarray) -> np.ndarray:
        """The same as predict(frame_features(...)) from the (2 x bands, frames) `base_features`,
        without building the context matrix: the first layer is a sum over context offsets of
        shifted (frames x 80) products, standardisation folded into the weights (a 3-minute take's
        context matrix alone is 40 MB)."""
        return mlp_over_context(self, base, CONTEXT)

    def features(self, y: np.ndarray | None, sr: int = SAMPLE_RATE, mag: np.ndarray | None = None) -> np.ndarray:
        """`base_features` as this model was trained on them."""
        return base_features(y, sr, mag, self.noise_scaled)

    def to_json(self) -> dict:
        def enc(a: np.ndarray) -> list:
            return np.round(a.astype(np.float64), 6).tolist()

        scaled = {"noise_scaled": True} if self.noise_scaled else {}  # absent: the plain features
        return {"format": "darc-bridge onset model 1", "n_fft": N_FFT, "hop": HOP, "n_mels": N_MELS,
                "context": list(CONTEXT), **scaled,
                **{k: enc(getattr(self, k)) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}}

    @classmethod
    def from_json(cls, d: dict) -> OnsetModel:
        if d.get("format") != "darc-bridge onset model 1" or d.get("hop") != HOP or d.get("n_mels") != N_MELS:
            raise ValueError("onset model file does not match this version's features")
        return cls(**{k: np.asarray(d[k], dtype=np.float32) for k in ("mean", "scale", "w1", "b1", "w2", "b2")},
                   noise_scaled=bool(d.get("noise_scaled", False)))


@functools.lru_cache(maxsize=1)
def load_model(path: str = str(MODEL_PATH)) -> OnsetModel:
    with open(path, encoding="utf-8") as f:
        return OnsetModel.from_json(json.load(f))


@functools.lru_cache(maxsize=2)
def _mel_basis(sr: int) -> np.ndarray:
    return librosa.filters.mel(sr=sr, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN, fmax=FMAX).astype(np.float32)


def magnitude(y: np.ndarray) -> np.ndarray:
    """The model's STFT magnitude (bins x frames) of a mono take at SAMPLE_RATE."""
    return np.abs(librosa.stft(np.asarray(y, dtype=np.float32), n_fft=N_FFT, hop_length=HOP))


def band_noise(log_mel: np.ndarray, median: np.ndarray) -> np.ndarray:
    """(bands, 1) how much each band's background moves: the upper quartile of its rise over
    SUPERFLUX_LAG frames where both frames are at or below the band's `median` (between hits). For
    noise the rise is symmetric and its upper quartile is its median absolute rise; a tail's steady
    fall only lowers it, so a clean take's decays do not read as noise."""
    rise = log_mel[:, SUPERFLUX_LAG:] - log_mel[:, :-SUPERFLUX_LAG]
    low = log_mel <= median
    quiet = low[:, SUPERFLUX_LAG:] & low[:, :-SUPERFLUX_LAG]
    out = np.zeros((log_mel.shape[0], 1), dtype=np.float32)
    for b in range(log_mel.shape[0]):
        if quiet[b].any():
            out[b, 0] = max(0.0, float(np.percentile(rise[b, quiet[b]], 75)))
    return out


def base_features(y: np.ndarray | None, sr: int = SAMPLE_RATE, mag: np.ndarray | None = None,
                  noise_scaled: bool = False) -> np.ndarray:
    """Per-frame features (2 x bands, frames) of a mono take at `sr` (already peak-normalised), or
    of its `magnitude` when the caller has it already (the extractor shares one STFT with NMF).
    `noise_scaled`: each band's rise divided by max(1, band_noise / NOISE_RISE_FLOOR), so a noisy
    band's random rises are measured against that band's own noise."""
    if mag is None:
        mag = magnitude(y)
    mel = _mel_basis(sr) @ mag
    log_mel = np.log10(1.0 + LOG_GAIN * mel).astype(np.float32)
    step = max(1, log_mel.shape[1] // 3000)  # a few thousand frames pin a median; long takes skip some
    median = np.median(log_mel[:, ::step], axis=1, keepdims=True)
    above = log_mel - median
    ref = maximum_filter1d(log_mel, SUPERFLUX_MAX_BANDS, axis=0)
    ref = np.pad(ref, ((0, 0), (SUPERFLUX_LAG, 0)), mode="edge")[:, : log_mel.shape[1]]
    flux = np.maximum(log_mel - ref, 0.0)
    if noise_scaled:
        flux = flux * (1.0 / np.maximum(1.0, band_noise(log_mel, median) / NOISE_RISE_FLOOR))
    return np.concatenate([above, flux], axis=0)  # (2 x bands, frames)


def frame_features(y: np.ndarray | None, sr: int = SAMPLE_RATE, mag: np.ndarray | None = None,
                   noise_scaled: bool = False) -> np.ndarray:
    """(frames x features) model input: `base_features` with CONTEXT frames stacked per frame."""
    base = base_features(y, sr, mag, noise_scaled)
    n = base.shape[1]
    lo, hi = -min(CONTEXT), max(CONTEXT)
    padded = np.pad(base, ((0, 0), (lo, hi)), mode="edge")
    return np.concatenate([padded[:, lo + c: lo + c + n] for c in CONTEXT], axis=0).T.copy()


def frame_times(n_frames: int, sr: int = SAMPLE_RATE) -> np.ndarray:
    return np.arange(n_frames) * HOP / sr


# ---------------------------------------------------------------- training (tune split only)


def _targets(n_frames: int, truth, sr: int) -> np.ndarray:
    y = np.zeros((n_frames, 4), dtype=np.int8)
    for o in truth:
        f = int(round(o.time * sr / HOP))
        lo, hi = max(0, f - LABEL_WIDTH), min(n_frames, f + LABEL_WIDTH + 1)
        y[lo:hi, 0] = 1
        if 0 <= o.cls <= 2:
            y[lo:hi, 1 + o.cls] = 1
    return y


NARROWBAND_SHARE = 0.2  # share of training takes heard through a band-limited input...
NARROWBAND_RATES = (8000, 11025, 16000)  # ...recorded at one of these rates (prompts may come at 8 kHz)
# Share of training takes sent through a phone's or laptop's voice path (eval.stress.mic_chain: mic
# noise, its band and rate, AGC on half of them, a lossy codec). Off: at 0.2 (one in five, like the
# narrowband share; most prompts reach the DAW losslessly through an interface) it lifted the
# phone/laptop stress takes but cost held-out realistic class F1 0.012 (docs/rhythm.md), so the
# committed model is trained without it (`--codec-share 0.2` rebuilds the measured one).
CODEC_SHARE = 0.0
# (libsndfile OGG subtype, compression levels drawn between): voice apps send 12-32 kbps (AMR-WB,
# Opus in WebRTC and messaging apps); Vorbis' floor at 8/16 kHz is 21/33 kbps (level 1), so it is
# drawn at its lowest levels (0.8: 26/38 kbps). A half of Opus at 0.90-0.97 (12-32 kbps) did worse
# on the tune split's realistic takes (onset F1 -0.013) and was left out.
CODECS = (("VORBIS", 0.8, 1.0),)
NOISE_SCALED = False  # train on noise-scaled features (NOISE_RISE_FLOOR; off: docs/rhythm.md)


def _voice_path(audio: np.ndarray, sr: int, rng: np.random.Generator, seed: int,
                share: float) -> tuple[np.ndarray, int] | None:
    """A phone's or laptop's voice path for `share` of takes (None: the take as it is). Every
    parameter is drawn for every take from `rng`, a stream of its own, so the other draws of
    `training_set` and the takes the path leaves alone do not depend on `share`."""
    from darc_bridge.eval.stress import MICS, mic_chain

    use = rng.random() < share
    band, rate = list(MICS.values())[int(rng.integers(len(MICS)))]
    pump = bool(rng.random() < 0.5)
    subtype, lo, hi = CODECS[int(rng.integers(len(CODECS)))]
    level = float(rng.uniform(lo, hi))
    if not use:
        return None
    return mic_chain(audio, sr, band, rate, seed, pump=pump, level=level, subtype=subtype), rate


def training_set(n_per_type: int, seed: int, negatives: float = 0.3, codec_share: float = CODEC_SHARE,
                 noise_scaled: bool = NOISE_SCALED) -> tuple[np.ndarray, np.ndarray]:
    """Frames of `tune` takes (clean and realistic, every prompt type), `codec_share` of them through
    a phone's or laptop's voice path: all frames near a hit and a seeded share of the others (most
    frames hold no hit)."""
    from darc_bridge.eval.takes import build_take, take_cases
    from darc_bridge.rhythm.features import RhythmSettings
    from darc_bridge.rhythm.nmf import LEAD_IN_S, _prepare

    rng = np.random.default_rng(seed)
    codec_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    xs, ys = [], []
    settings = RhythmSettings()
    lead = int(round(LEAD_IN_S * SAMPLE_RATE))
    for i, case in enumerate(take_cases(seed, "tune", n_per_type)):
        take = build_take(case)
        audio, truth, sr = take.audio, take.truth, take.sample_rate
        if rng.random() < NARROWBAND_SHARE:  # a phone or a cheap interface: nothing above 4-8 kHz
            rate = int(rng.choice(NARROWBAND_RATES))
            audio = librosa.resample(audio, orig_sr=take.sample_rate, target_sr=rate, res_type="soxr_hq")
            audio = librosa.resample(audio, orig_sr=rate, target_sr=take.sample_rate, res_type="soxr_hq")
        lossy = _voice_path(audio, sr, codec_rng, case.seed, codec_share)
        if lossy is not None:
            audio, sr = lossy
        y = np.pad(_prepare(audio, sr, settings), (lead, 0))
        x = frame_features(y, noise_scaled=noise_scaled)
        shifted = [type(o)(o.time + lead / SAMPLE_RATE, o.cls, o.strength) for o in truth]
        t = _targets(x.shape[0], shifted, SAMPLE_RATE)
        keep = (t[:, 0] == 1) | (rng.random(x.shape[0]) < negatives)
        xs.append(x[keep])
        ys.append(t[keep])
        if (i + 1) % 20 == 0:
            log.info("training takes: %d", i + 1)
    return np.concatenate(xs), np.concatenate(ys)


NEGATIVE_SHARE = 0.3  # share of hit-free frames kept for training (most frames hold no hit)


def train(n_per_type: int = 48, seed: int = 1, hidden: int = 64, out: Path = MODEL_PATH,
          codec_share: float = CODEC_SHARE, noise_scaled: bool = NOISE_SCALED) -> OnsetModel:
    """Fit the model on `tune` takes and write its weights to `out` (deterministic for a seed).

    Hit-free frames are subsampled to NEGATIVE_SHARE, which multiplies every output's odds by
    1 / NEGATIVE_SHARE; the output biases are corrected by log(NEGATIVE_SHARE), so 0.5 stays the
    model's decision boundary on a whole take."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    # One thread for every native pool, the training set's features included: a BLAS product over
    # two threads rounds differently (the mel projection of every take), which changed the fitted
    # model: a 2-thread run wrote another file than a 1-thread one.
    with threadpool_limits(limits=1):
        x, y = training_set(n_per_type, seed, NEGATIVE_SHARE, codec_share, noise_scaled)
        mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
        log.info("training on %d frames x %d features (%.0f s to build)", *x.shape, time.perf_counter() - t0)
        clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=256, learning_rate_init=1e-3,
                            max_iter=40, early_stopping=True, n_iter_no_change=4, random_state=seed)
        clf.fit((x - mean) / scale, y)
    model = OnsetModel(mean.astype(np.float32), scale.astype(np.float32), clf.coefs_[0].astype(np.float32),
                       clf.intercepts_[0].astype(np.float32), clf.coefs_[1].astype(np.float32),
                       (clf.intercepts_[1] + np.log(NEGATIVE_SHARE)).astype(np.float32), noise_scaled)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(model.to_json(), separators=(",", ":")), encoding="utf-8")
    tmp.replace(out)
    log.info("onset model written to %s after %.0f s (%d epochs)", out, time.perf_counter() - t0, clf.n_iter_)
    load_model.cache_clear()
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train the onset/class model on the tune split")
    parser.add_argument("--n", type=int, default=48, help="tune takes per prompt type and tier")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--codec-share", type=float, default=CODEC_SHARE,
                        help="share of takes through a phone's or laptop's voice path (lossy codec)")
    parser.add_argument("--noise-scaled", action=argparse.BooleanOptionalAction, default=NOISE_SCALED,
                        help="scale each band's features by its own noise (NOISE_RISE_FLOOR)")
    args = parser.parse_args(argv)
    if not 0.0 <= args.codec_share <= 1.0:
        parser.error(f"--codec-share must be between 0 and 1, got {args.codec_share}")
    logging.basicConfig(level=logging.INFO)
    train(args.n, args.seed, args.hidden, args.out, args.codec_share, args.noise_scaled)


if __name__ == "__main__":
    main()
