"""The drum transcriber's own learned model: kick / snare / hat probabilities per 10 ms frame of a drum stem.

Why a model of its own, and not the rhythm extractor's (rhythm/onset_model.py): the domain differs.
The extractor's model learned what a *prompt* hit looks like (voices, taps, beatbox, kits, noisy
rooms) and must stay as it is, because the engines and the issue-9 figures depend on it. The
transcriber hears *drum stems*: a whole kit playing at once, with ghost notes, open hats, cymbals
and toms, possibly in a room and through the blur of a small neural codec. Trained for prompts,
the extractor's model heard a held-out kit's snare as a hat and a bare run of kicks as hats, so the
gate's own reference drums scored snare F1 0.58, below the gate's target.

Training material (the `tune` split of darc_bridge.kits.splits only, so the gate's held-out kits
stay unseen): grooves of data/grooves.py (meters, feels, ghost notes, open hats, fills, crashes,
rides, rests) played by data/kit_corpus.render_kit on the tune Hydrogen kits and on the tune
General MIDI programs of FluidR3_GM (kits/soundfont.py), plus the synthetic drums the evaluation
also scores (the kit engine's built-in kit, the `acoustic` and `electro` families of DARC's training
songs). Every piece is labelled as the gate counts it (grooves.PIECE_CLASS: toms and claps are
snares, open hats, rides and crashes are hats). Half the stems are "scattered" (each class on random
steps, independently): in a groove nearly every snare comes with a hat, and a model trained on
grooves alone hears a hat in every snare. Augmentation: velocity layers, per-piece gain, pitch,
level and rooms (kit_corpus.DrumAugment), a three-band EQ, stems with only some pieces playing, and
a light degradation (low-pass, noise, or a codec-like blur: the magnitude smeared over neighbouring
frames and coarsely quantised).

Input: the extractor's own features (onset_model.base_features: above-background log-mel and its
SuperFlux rise) plus the plain log-mel of the peak-normalised stem (a run of kicks raises a band's
background, so "above background" alone loses it), over frames from 30 ms before to 80 ms after the
frame (a kick's body and a snare's rattle come after the attack). Output: three sigmoids, "a kick /
snare / hat starts here". Model: scikit-learn's MLPClassifier, one hidden ReLU layer, fitted with a
fixed seed and run here in numpy; the weights are package data (drum_model.npz, about 270 KB).

Retrain: `python -m darc_bridge.eval.drum_model train` (about 1.5 minutes on one core);
`python -m darc_bridge.eval.drum_model cv` is the leave-one-kit-out cross-validation over the tune
kits and programs that chose the settings; `... heldout` scores the gate's reference drums with
both transcribers. Nothing here is tuned on held-out kits (figures: docs/evaluation.md).
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
from scipy.signal import butter, sosfilt

from darc_bridge.rhythm import onset_model

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("drum_model.npz")
FORMAT = "darc-bridge drum model 1"
SAMPLE_RATE = onset_model.SAMPLE_RATE  # 22050: the extractor's analysis rate and features
FPS = SAMPLE_RATE / onset_model.HOP
CONTEXT = (-3, -2, -1, 0, 1, 2, 3, 5, 8)  # frames: the rise before a hit, its body up to 80 ms after
LEAD_IN_S = 0.1  # silence put before a stem, so a hit at sample 0 rises like any other
THRESHOLD = 0.5  # a class probability peak at the model's decision boundary is a hit
MIN_GAP_S = 0.04  # two peaks of one class closer than this are one hit (a flam, a ringing tail)
NEGATIVE_SHARE = 0.3  # share of hit-free frames kept in training (most frames hold no hit)


# ---------------------------------------------------------------- features and model


def prepare(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at SAMPLE_RATE, peak 1, LEAD_IN_S of silence in front (the audio must not be silent)."""
    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=0) if x.shape[0] <= x.shape[1] else x.mean(axis=1)
    x = x / float(np.max(np.abs(x)))
    if sample_rate != SAMPLE_RATE:
        x = librosa.resample(x, orig_sr=sample_rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    x = np.pad(x, (int(round(LEAD_IN_S * SAMPLE_RATE)), 0))
    if x.size < onset_model.N_FFT:
        x = np.pad(x, (0, onset_model.N_FFT - x.size))
    return np.ascontiguousarray(x, dtype=np.float32)


def stem_features(y: np.ndarray) -> np.ndarray:
    """(3 x bands, frames) of a prepared stem: the extractor's base features and the plain log-mel."""
    mag = onset_model.magnitude(y)
    base = onset_model.base_features(None, SAMPLE_RATE, mag)
    log_mel = np.log10(1.0 + onset_model.LOG_GAIN * (onset_model._mel_basis(SAMPLE_RATE) @ mag))
    return np.concatenate([base, log_mel.astype(np.float32)], axis=0)


def stacked(base: np.ndarray, context: tuple[int, ...] = CONTEXT) -> np.ndarray:
    """(frames x features): `base` frames at each CONTEXT offset side by side (edges repeated)."""
    n, lo, hi = base.shape[1], -min(context), max(context)
    padded = np.pad(base, ((0, 0), (lo, hi)), mode="edge")
    return np.concatenate([padded[:, lo + c: lo + c + n] for c in context], axis=0).T.copy()


@dataclass(frozen=True)
class DrumModel:
    """Standardisation and MLP weights (one hidden ReLU layer, three sigmoid outputs)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    context: tuple[int, ...] = CONTEXT

    def predict(self, base: np.ndarray) -> np.ndarray:
        """(features, frames) `stem_features` -> (frames x 3) kick, snare, hat probabilities. The first
        layer is summed over context offsets (standardisation folded in), never building the
        context matrix (a 3-minute stem's would take 100 MB)."""
        return onset_model.mlp_over_context(self, base, self.context)

    def save(self, path: Path) -> Path:
        meta = {"format": FORMAT, "hop": onset_model.HOP, "n_mels": onset_model.N_MELS, "context": list(self.context)}
        arrays = {k: getattr(self, k).astype(np.float32) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> DrumModel:
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format") != FORMAT or meta.get("hop") != onset_model.HOP or meta.get("n_mels") != onset_model.N_MELS:
                raise ValueError(f"{path}: drum model file does not match this version's features")
            arrays = {k: np.asarray(data[k], dtype=np.float32) for k in ("mean", "scale", "w1", "b1", "w2", "b2")}
        return cls(**arrays, context=tuple(int(c) for c in meta["context"]))


@functools.lru_cache(maxsize=2)
def load_model(path: str = str(MODEL_PATH)) -> DrumModel:
    return DrumModel.load(Path(path))


def probabilities(audio: np.ndarray, sample_rate: int, model: DrumModel | None = None) -> np.ndarray:
    """(frames x 3) kick, snare, hat probabilities of a non-silent stem; frame f is at f / FPS s
    (the lead-in already taken off)."""
    base = stem_features(prepare(audio, sample_rate))
    probs = (model or load_model()).predict(base)
    return probs[int(round(LEAD_IN_S * FPS)):]


def pick_hits(probs: np.ndarray, threshold: float = THRESHOLD, min_gap_s: float = MIN_GAP_S) -> list[np.ndarray]:
    """Per class, the frames where its probability peaks at or above `threshold` (the first of peaks
    closer than `min_gap_s`)."""
    from darc_bridge.rhythm.nmf import _pick_onsets

    gap = max(1, int(round(min_gap_s * FPS)))
    return [_pick_onsets(probs[:, c], threshold, gap) for c in range(probs.shape[1])]


# ---------------------------------------------------------------- training material (tune split only)


def _gm_kit(program: str, sample_rate: int):
    """A tune General MIDI program of FluidR3_GM as a sample-pack kit (3 velocity layers per note)."""
    from darc_bridge.data.kit_pack import LONG_PIECES, LONG_S, SHORT_S, PackKit, Shot, _trim
    from darc_bridge.kits import PIECE_GM_NOTES, find_soundfonts, render_gm_notes
    from darc_bridge.kits.soundfont import GM_DRUM_PROGRAMS
    from darc_bridge.kits.splits import split_of_kit

    fonts = [f for f in find_soundfonts() if "fluidr3_gm" in f.name.lower()] or find_soundfonts()
    if not fonts:
        from darc_bridge.errors import InputError

        raise InputError("no GM SoundFont found (Debian: apt install fluid-soundfont-gm)")
    velocities = (40, 80, 120)
    notes = [(piece, note) for piece, ns in PIECE_GM_NOTES.items() for note in ns[:2]]
    hits = [(note, v) for _, note in notes for v in velocities]
    shots = iter(render_gm_notes(fonts[0], hits, sample_rate, GM_DRUM_PROGRAMS[program], slot_s=1.3))
    kit = PackKit(program, split_of_kit(program) or "unknown")
    for piece, _ in notes:
        seconds = LONG_S if piece in LONG_PIECES else SHORT_S
        layers = [Shot(_trim(next(shots).mean(axis=0), sample_rate, seconds), v / 127) for v in velocities]
        if max(float(np.max(np.abs(s.audio))) for s in layers) > 1e-4:
            peak = max(float(np.max(np.abs(s.audio))) for s in layers)
            kit.pieces.setdefault(piece, []).append([Shot((s.audio / peak).astype(np.float32), s.velocity)
                                                     for s in layers])
    return kit


def tune_sources(sample_rate: int = SAMPLE_RATE) -> list:
    """The tune Hydrogen kits and tune GM programs, as sample-pack kits at `sample_rate`."""
    from darc_bridge.data.kit_pack import build_pack, check_training_kits
    from darc_bridge.kits.splits import GM_PROGRAMS

    kits = build_pack(sample_rate, splits=("tune",)).kits
    kits += [_gm_kit(p, sample_rate) for p in GM_PROGRAMS["tune"]]
    check_training_kits(kits)
    return kits


SUBSET_SHARE = 0.2  # share of stems where only some pieces play (a bare run of kicks, hats alone)
SCATTER_SHARE = 0.5  # share of stems whose classes play independently (a groove puts a hat on every snare)
DEGRADE_SHARE = 0.5  # share of stems heard through a low-pass, noise or a codec-like blur


def _codec_blur(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What a small neural codec does to drums, roughly: magnitudes smeared over neighbouring frames
    and quantised to coarse steps, phases kept."""
    from scipy.ndimage import uniform_filter1d

    spec = librosa.stft(x, n_fft=512, hop_length=128)
    mag, phase = np.abs(spec), np.angle(spec)
    mag = uniform_filter1d(mag, int(rng.integers(2, 5)), axis=1)
    step = float(rng.uniform(1.0, 3.0))  # dB
    db = np.round(20 * np.log10(mag + 1e-6) / step) * step
    return librosa.istft(10 ** (db / 20) * np.exp(1j * phase), hop_length=128, length=x.size).astype(np.float32)


EQ_DB = 6.0  # each of three bands (below 250 Hz, between, above 4 kHz) louder or softer by up to this


def equalise(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Another microphone, desk or mix: the low, middle and high bands scaled independently."""
    low = sosfilt(butter(2, 250 / (sample_rate / 2), output="sos"), x)
    high = sosfilt(butter(2, 4000 / (sample_rate / 2), btype="high", output="sos"), x)
    gains = 10 ** (rng.uniform(-EQ_DB, EQ_DB, 3) / 20) - 1.0
    return (x + gains[0] * low + gains[2] * high + gains[1] * (x - low - high)).astype(np.float32)


def degrade(x: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    kind = int(rng.integers(3))
    if kind == 0:  # a dull codec or a cheap converter: nothing above 4-10 kHz
        cutoff = float(rng.uniform(4000, min(10000, 0.45 * sample_rate)))
        return sosfilt(butter(4, cutoff / (sample_rate / 2), output="sos"), x).astype(np.float32)
    if kind == 1:  # hiss 25-45 dB below the stem's level
        rms = float(np.sqrt(np.mean(x ** 2))) + 1e-9
        noise = rng.standard_normal(x.size) * rms * 10 ** (-float(rng.uniform(25, 45)) / 20)
        return (x + noise).astype(np.float32)
    return _codec_blur(x, rng)


# Synthetic drums the transcriber scores too: the kit engine's built-in kit and the voice families
# that data/kit_corpus.py plays DARC's training songs with (their stems are transcribed there).
SYNTHETIC = ("builtin", "acoustic", "electro")
SCATTER_PIECES = (("kick",), ("snare", "snare", "tom", "clap"), ("hat", "hat", "open_hat", "ride", "crash"))


def scattered_hits(rng: np.random.Generator, duration: float) -> list:
    """Hits with no groove: each class, when it plays, on random steps of a 16th grid at its own
    density, so no class predicts another (in a groove nearly every snare has a hat with it, and a
    model learns to hear a hat in every snare)."""
    from darc_bridge.data.grooves import Hit

    step = 60.0 / float(rng.uniform(70, 180)) / 4
    grid = np.arange(0.05, duration - 0.05, step)
    hits = []
    for pieces in SCATTER_PIECES:
        if rng.random() < 0.3:
            continue
        for t in grid[rng.random(grid.size) < rng.uniform(0.05, 0.6)]:
            piece = str(pieces[int(rng.integers(len(pieces)))])
            hits.append(Hit(float(t + rng.normal(0, 0.004)), piece, float(rng.uniform(0.15, 1.0))))
    return sorted(hits, key=lambda h: (h.time, h.piece))


def render_stem(kit, seed: int, duration: float, augment: bool = True, eq: bool = True) -> tuple[np.ndarray, list]:
    """One training stem of `kit` (a PackKit, or one of SYNTHETIC): mono audio at SAMPLE_RATE and its truth
    (three-class onsets as the gate counts them)."""
    from darc_bridge.data.grooves import Groove, make_groove
    from darc_bridge.data.kit_corpus import NO_AUGMENT, DrumAugment, render_kit, render_synthetic

    rng = np.random.default_rng([seed, 11])
    groove = make_groove(rng, duration)
    hits = groove.hits
    if augment and rng.random() < SCATTER_SHARE:
        hits = scattered_hits(rng, duration) or hits
    elif augment and rng.random() < SUBSET_SHARE:
        keep = {int(c) for c in rng.choice(3, size=int(rng.integers(1, 3)), replace=False)}
        hits = [h for h in hits if h.cls in keep] or hits
    settings = DrumAugment() if augment else NO_AUGMENT
    if isinstance(kit, str):
        x = render_synthetic(hits, duration, SAMPLE_RATE, kit, rng, settings)
    else:
        x = render_kit(hits, duration, SAMPLE_RATE, kit, rng, settings)
    if augment and eq:
        x = equalise(x, SAMPLE_RATE, rng)
    if augment and rng.random() < DEGRADE_SHARE:
        x = degrade(x, SAMPLE_RATE, rng)
    truth = Groove(hits, groove.tempo, groove.beats_per_bar, groove.beats, groove.downbeats, groove.feel).onsets()
    return x, truth


def _targets(n_frames: int, truth) -> np.ndarray:
    """(frames x 3) labels: a class's hit marks its frame and the frame either side (STFT smear)."""
    y = np.zeros((n_frames, 3), dtype=np.int8)
    for o in truth:
        f = int(round((o.time + LEAD_IN_S) * FPS))
        if 0 <= o.cls <= 2:
            y[max(0, f - 1): min(n_frames, f + 2), o.cls] = 1
    return y


def stem_frames(x: np.ndarray, truth, rng: np.random.Generator,
                context: tuple[int, ...] = CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    """Training frames of one stem: every frame near a hit and NEGATIVE_SHARE of the others."""
    base = stem_features(prepare(x, SAMPLE_RATE))
    t = _targets(base.shape[1], truth)
    keep = t.any(axis=1) | (rng.random(base.shape[1]) < NEGATIVE_SHARE)
    return stacked(base, context)[keep].astype(np.float32), t[keep]


def source_frames(kit, n_stems: int, seed: int, duration: float, eq: bool = True,
                  context: tuple[int, ...] = CONTEXT) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 3])
    xs, ys = [], []
    for i in range(n_stems):
        x, truth = render_stem(kit, seed * 1009 + i, duration, eq=eq)
        fx, fy = stem_frames(x, truth, rng, context)
        xs.append(fx)
        ys.append(fy)
    return np.concatenate(xs), np.concatenate(ys)


def fit(x: np.ndarray, y: np.ndarray, seed: int, hidden: int, max_iter: int = 40,
        context: tuple[int, ...] = CONTEXT) -> DrumModel:
    """An MLP on frames (deterministic for a seed); output biases corrected for the subsampled
    hit-free frames, so THRESHOLD stays the decision boundary on a whole stem."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=256, learning_rate_init=1e-3,
                        max_iter=max_iter, early_stopping=True, n_iter_no_change=4, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):
        clf.fit((x - mean) / scale, y)
    log.info("fitted on %d frames x %d features in %d epochs", *x.shape, clf.n_iter_)
    return DrumModel(mean.astype(np.float32), scale.astype(np.float32), clf.coefs_[0].astype(np.float32),
                     clf.intercepts_[0].astype(np.float32), clf.coefs_[1].astype(np.float32),
                     (clf.intercepts_[1] + np.log(NEGATIVE_SHARE)).astype(np.float32), tuple(context))


@dataclass(frozen=True)
class Recipe:
    """What a training run uses; the defaults are the committed model's."""

    stems_per_source: int = 48
    duration: float = 8.0
    hidden: int = 64
    seed: int = 1
    max_iter: int = 40
    synthetic_stems: int = 32  # per SYNTHETIC timbre
    eq: bool = True  # equalise every training stem (EQ_DB)
    context: tuple[int, ...] = CONTEXT


def _source_names(sources: list) -> list[str]:
    return [getattr(s, "name", s) for s in sources]


def _synthetic_frames(recipe: Recipe) -> list[tuple[np.ndarray, np.ndarray]]:
    return [source_frames(t, recipe.synthetic_stems, recipe.seed * 100 + 90 + i, recipe.duration, recipe.eq,
                          recipe.context) for i, t in enumerate(SYNTHETIC) if recipe.synthetic_stems]


def train(recipe: Recipe = Recipe(), out: Path = MODEL_PATH, sources: list | None = None) -> DrumModel:
    """Fit on every tune source and write the weights to `out`."""
    from darc_bridge.data.kit_pack import check_training_kits

    t0 = time.perf_counter()
    sources = tune_sources() if sources is None else sources
    check_training_kits([k for k in sources if not isinstance(k, str)])
    parts = [source_frames(k, recipe.stems_per_source, recipe.seed * 100 + i, recipe.duration, recipe.eq, recipe.context)
             for i, k in enumerate(sources)]
    parts += _synthetic_frames(recipe)
    x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    log.info("sources %s: %d frames (%.0f s to render)", ", ".join(_source_names(sources)), x.shape[0],
             time.perf_counter() - t0)
    model = fit(x, y, recipe.seed, recipe.hidden, recipe.max_iter, recipe.context)
    model.save(out)
    load_model.cache_clear()
    log.info("drum model written to %s after %.0f s", out, time.perf_counter() - t0)
    return model


def _runner_figures(truth: list, found: list) -> list[float]:
    """Per-class F1 (kick, snare, hat) and onset F1 of found hits, merged as eval/runner.py merges them."""
    from darc_bridge.eval.metrics import onset_f1, per_class_f1
    from darc_bridge.eval.runner import DEDUPE_S

    merged: list[float] = []
    for t in sorted(o.time for o in found):
        if not merged or t - merged[-1] > DEDUPE_S:
            merged.append(t)
    pc = per_class_f1(truth, found)
    ref = np.array(sorted({round(o.time, 4) for o in truth if o.cls < 3}))
    return [pc["kick"]["f1"], pc["snare"]["f1"], pc["hat"]["f1"], onset_f1(ref, np.array(merged))["f1"]]


def score_stems(model: DrumModel | None, stems: list[tuple[np.ndarray, list]],
                threshold: float = THRESHOLD) -> np.ndarray:
    """Mean kick, snare, hat and onset F1 of `model` over (audio, truth) stems (None: the rhythm
    extractor's model, the transcriber before this one)."""
    from darc_bridge.rhythm.features import Onset
    from darc_bridge.rhythm.nmf import extract_rhythm

    rows = []
    for x, truth in stems:
        if model is None:
            found = [o for o in extract_rhythm(x, SAMPLE_RATE).onsets if o.cls < 3]
        else:
            frames = pick_hits(probabilities(x, SAMPLE_RATE, model), threshold)
            found = [Onset(f / FPS, c, 1.0) for c, fs in enumerate(frames) for f in fs]
        rows.append(_runner_figures(truth, found))
    return np.array(rows).mean(axis=0)


def cross_validate(recipe: Recipe = Recipe(), val_stems: int = 6, baseline: bool = False,
                   thresholds: tuple[float, ...] = ()) -> dict[str, list[float]]:
    """Leave one tune source out: fit on the others, score clean stems of the left-out one."""
    sources = tune_sources()
    frames = [source_frames(k, recipe.stems_per_source, recipe.seed * 100 + i, recipe.duration, recipe.eq, recipe.context)
              for i, k in enumerate(sources)]
    synthetic = _synthetic_frames(recipe)
    out = {}
    for i, kit in enumerate(sources):
        parts = [f for j, f in enumerate(frames) if j != i] + synthetic
        model = fit(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                    recipe.seed, recipe.hidden, recipe.max_iter, recipe.context)
        val = [render_stem(kit, 77_000 + v, 10.0, augment=False) for v in range(val_stems)]
        out[kit.name] = [round(float(v), 3) for v in score_stems(model, val)]
        log.info("left out %s: kick %.3f snare %.3f hat %.3f onset %.3f", kit.name, *out[kit.name])
        for th in thresholds:
            out[f"{kit.name} (threshold {th})"] = [round(float(v), 3) for v in score_stems(model, val, th)]
        if baseline:
            out[kit.name + " (extractor model)"] = [round(float(v), 3) for v in score_stems(None, val)]
            log.info("   extractor's model: kick %.3f snare %.3f hat %.3f onset %.3f", *out[kit.name + " (extractor model)"])
    for suffix in ("", " (extractor model)", *(f" (threshold {th})" for th in thresholds)):
        rows = [v for k, v in out.items() if k.endswith(suffix) and (suffix or "(" not in k)]
        if rows:
            out["mean" + suffix] = [round(float(v), 3) for v in np.mean(rows, axis=0)]
    return out


def held_out_report(set_dir: Path) -> dict[str, dict[str, list[float]]]:
    """The gate's reference drums (write_gate_set: 32 cases from the held-out kits, written to
    `set_dir` if missing) scored as eval/runner.py scores them, through the extractor's model (the
    transcriber before this model) and through this model, overall and per kit. Run once, at the
    end: the held-out figures are reported, never tuned on."""
    from darc_bridge.data.kit_corpus import write_gate_set
    from darc_bridge.data.kit_pack import build_pack
    from darc_bridge.eval.runner import find_cases, load_case
    from darc_bridge.eval.transcribe import transcribe

    if not (set_dir.is_dir() and any(set_dir.iterdir())):
        write_gate_set(set_dir, build_pack(32000, splits=("held_out",)))
    rows: dict[str, dict[str, list]] = {"extractor model (before)": {}, "drum model (now)": {}}
    for folder in find_cases(set_dir):
        case = load_case(folder)
        kit = json.loads((folder / "case.json").read_text())["kit"]
        stem, sr = case.drums.mono(), case.drums.sample_rate
        for name, method in (("extractor model (before)", "extractor"), ("drum model (now)", "drum")):
            found = transcribe(stem, sr, method=method).onsets
            fig = _runner_figures(case.prompt_onsets, found)
            for key in ("all", kit):
                rows[name].setdefault(key, []).append(fig)
    return {name: {k: [round(float(v), 3) for v in np.mean(r, axis=0)] for k, r in by.items()}
            for name, by in rows.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="train or cross-validate the drum transcriber's model (tune split)")
    parser.add_argument("command", choices=("train", "cv", "heldout"),
                        help="train: fit and write the model; cv: leave-one-kit-out over tune kits; "
                             "heldout: the gate's reference drums, before and now (once, at the end)")
    parser.add_argument("--set", type=Path, default=Path("/tmp/darc-gate-set"), help="heldout: gate set folder")
    parser.add_argument("--stems", type=int, default=Recipe.stems_per_source, help="training stems per tune source")
    parser.add_argument("--hidden", type=int, default=Recipe.hidden)
    parser.add_argument("--seed", type=int, default=Recipe.seed)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--context", type=int, nargs="+", default=list(CONTEXT), help="frame offsets seen")
    parser.add_argument("--no-eq", action="store_true", help="no EQ augmentation")
    parser.add_argument("--thresholds", type=float, nargs="*", default=(), help="cv: also score these thresholds")
    parser.add_argument("--baseline", action="store_true", help="cv: score the extractor's model on the same stems")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = Recipe(stems_per_source=args.stems, hidden=args.hidden, seed=args.seed, eq=not args.no_eq,
                    context=tuple(args.context))
    if args.command == "train":
        train(recipe, args.out)
    elif args.command == "heldout":
        print(json.dumps(held_out_report(args.set), indent=1))
    else:
        print(json.dumps(cross_validate(recipe, baseline=args.baseline, thresholds=tuple(args.thresholds)), indent=1))


if __name__ == "__main__":
    main()
