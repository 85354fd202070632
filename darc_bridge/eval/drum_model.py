"""The drum transcriber's own learned model: kick / snare / hat probabilities per 10 ms frame of a drum stem.

Why a model of its own, and not the rhythm extractor's (rhythm/onset_model.py): the domain differs.
The extractor's model learned what a *prompt* hit looks like (voices, taps, beatbox, kits, noisy
rooms) and must stay as it is, because the engines and the issue-9 figures depend on it. The
transcriber hears *drum stems*: a whole kit playing at once, with ghost notes, open hats, cymbals
and toms, possibly in a room and through the blur of a small neural codec. Trained for prompts,
the extractor's model heard a held-out kit's snare as a hat and a bare run of kicks as hats, so the
gate's own reference drums scored snare F1 0.58, below the gate's target.

This module is what the transcriber (eval/transcribe.py) runs: the features, the model and its
file, the decision; and the training entry point (fit, Recipe, train, the CLI). Why the rest lives
apart: the training material (eval/drum_material.py, its procedural kits eval/drum_random_kits.py)
and the scoring that chose the settings (eval/drum_scoring.py) are never needed to transcribe, and
the eval gate hashes the files holding the run-time decision code (train/gate.py's gate_weights:
this file and transcribe.py, with the weights). Those modules import this one, so train and main
import them inside the function.

Input: the extractor's own features (onset_model.base_features: above-background log-mel and its
SuperFlux rise) plus the plain log-mel of the peak-normalised stem (a run of kicks raises a band's
background, so "above background" alone loses it), over frames from 30 ms before to 80 ms after the
frame (a kick's body and a snare's rattle come after the attack). Output: three sigmoids, "a kick /
snare / hat starts here". Model: scikit-learn's MLPClassifier, one hidden ReLU layer, fitted with a
fixed seed and run here in numpy; three of them (DrumEnsemble), member k fitted at seed 1 + k on
material rendered at that seed (bagging), their probabilities averaged: on the folds that raised
kick, snare and hat F1 together (docs/evaluation.md). The weights are package data (drum_model.npz,
one file, about 800 KB).
Decision (pick_hits): a peak at 0.5 is a hit, but a snare beside a kick and a hat needs 0.9: on a
kit it has not heard, the model takes a kick+hat struck together for a snare more than for anything
else (the gate's held-out kits: a third of their kick+hat moments), and the superposition already
explains that onset.

Retrain: `python -m darc_bridge.eval.drum_model train` (about 3 minutes on one core; `--members 1`
for one fit);
`python -m darc_bridge.eval.drum_model cv` is the leave-one-kit-out cross-validation over the tune
kits and programs that chose the settings (drum_scoring.cross_validate; it gives snare precision,
recall and the superposition errors too: false snares on a kick+hat, snares missed under a cymbal;
`Recipe` keeps the training options tried against them: hybrid kits, untaught masked snares,
balanced combinations);
`... heldout` scores the gate's reference drums with both transcribers (and an earlier model file;
drum_scoring.held_out_report);
`... cv --head combo --decisions argmax marginal` the joint head, each decision with and without the
kick+hat rule (`train --head combo` writes such a model).
Nothing here is tuned on held-out kits (figures: docs/evaluation.md).

Two options aimed at kits never heard were tried after that and are kept off by default
(`Recipe.random_stems`, `Recipe.tilt`; `--random-stems`, `--tilt`): domain randomisation (stems
played by procedural kits, drum_random_kits.random_kit; it lowered the folds' snare F1, figures
there); taking each stem's spectral tilt off the plain log-mel (without_tilt) left the folds'
snare F1 level (0.766, against 0.762) and, measured once on the gate's held-out kits, lowered
snare and kick F1 (0.582 -> 0.566, 0.767 -> 0.735), so the committed weights are the earlier ones.
More recorded tune sources (`Recipe.sources = "enlarged"`, `--sources enlarged`; drum_material.py,
figures there) are kept off as well.
A joint head (`Recipe.head = "combo"`, `--head combo`: one softmax over the eight combinations of
classes starting at a frame, hits read at peaks of 1 - P(none)) lowered the folds' snare F1 (0.762
-> 0.729; 0.725 with balanced combinations), so it was not measured on the held-out kits and is
kept off; files without a `head` in their meta load as the sigmoids they hold.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import librosa
import numpy as np

from darc_bridge.rhythm import onset_model

log = logging.getLogger(__name__)

MODEL_PATH = Path(__file__).with_name("drum_model.npz")
FORMAT = "darc-bridge drum model 1"
SAMPLE_RATE = onset_model.SAMPLE_RATE  # 22050: the extractor's analysis rate and features
FPS = SAMPLE_RATE / onset_model.HOP
CONTEXT = (-3, -2, -1, 0, 1, 2, 3, 5, 8)  # frames: the rise before a hit, its body up to 80 ms after
LEAD_IN_S = 0.1  # silence put before a stem, so a hit at sample 0 rises like any other
THRESHOLD = 0.5  # a class probability peak at the model's decision boundary is a hit
# A snare peak where a kick and a hat peak too (within the runner's DEDUPE_S) must reach this: the
# kick+hat superposition already explains such an onset, and on a kit the model has not heard it is
# what a false snare most often is (leave-one-kit-out over the tune sources: a sixth of kick+hat
# moments heard as a snare at 0.5; 0.7-0.95 scored, 0.9 the highest snare F1; docs/evaluation.md).
SNARE_ON_KICK_HAT: float | None = 0.9
MIN_GAP_S = 0.04  # two peaks of one class closer than this are one hit (a flam, a ringing tail)
# The model's output layer (Recipe.head, stored in the file's meta): "sigmoid", three independent
# sigmoids (a kick / snare / hat starts here; the committed model); "combo", one softmax over the
# eight combinations of classes that start at a frame, index = bit c set for class c (0 none, 1 K,
# 2 S, 3 KS, 4 H, 5 KH, 6 SH, 7 KSH), so "kick+hat" and "snare+hat" compete as explanations of one
# onset (tried, lower snare F1 on the folds: off by default, docs/evaluation.md).
HEADS = ("sigmoid", "combo")
N_COMBOS = 8
MEMBERSHIP = np.array([[combo >> c & 1 for c in range(3)] for combo in range(N_COMBOS)], dtype=np.float32)
# How pick_hits reads the combo head at a peak of 1 - P(none): "argmax", the likeliest of the seven
# non-empty combinations; "marginal", every class whose probability (summed over the combinations
# holding it) reaches the threshold (the likeliest class if none does). Leave-one-kit-out, the
# combo head's snare F1: argmax 0.729, marginal 0.726 (within noise; the simpler reading kept).
COMBO_DECISIONS = ("argmax", "marginal")
COMBO_DECISION = "argmax"
# The combo head decides without the kick+hat rule, the softmax weighing a kick+hat against a snare
# itself: on the folds the rule moved its snare F1 by +0.004 only (0.729 -> 0.733), trading recall
# for precision as it did for the sigmoids, so no second rule is stacked on the joint head.
COMBO_ON_KICK_HAT: float | None = None
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


def stem_features(y: np.ndarray, tilt: bool = False) -> np.ndarray:
    """(3 x bands, frames) of a prepared stem: the extractor's base features and the plain log-mel
    (`tilt`: less the stem's spectral tilt, see without_tilt)."""
    mag = onset_model.magnitude(y)
    base = onset_model.base_features(None, SAMPLE_RATE, mag)
    log_mel = np.log10(1.0 + onset_model.LOG_GAIN * (onset_model._mel_basis(SAMPLE_RATE) @ mag)).astype(np.float32)
    return np.concatenate([base, without_tilt(log_mel) if tilt else log_mel], axis=0)


def without_tilt(log_mel: np.ndarray) -> np.ndarray:
    """`log_mel` (bands, frames) less a straight line over the bands fitted to the stem's mean
    spectrum: a darker or brighter kit (or desk) moves every frame's spectrum by about such a line,
    which would move its snares towards the kick or the hat; the shape of each hit is kept (the
    per-band median, the extractor's "above background", removes that shape too)."""
    mean = log_mel.mean(axis=1)
    bands = np.arange(mean.size, dtype=np.float32)
    slope, offset = np.polyfit(bands, mean, 1)
    return (log_mel - (slope * bands + offset)[:, None]).astype(np.float32)


def stacked(base: np.ndarray, context: tuple[int, ...] = CONTEXT) -> np.ndarray:
    """(frames x features): `base` frames at each CONTEXT offset side by side (edges repeated)."""
    n, lo, hi = base.shape[1], -min(context), max(context)
    padded = np.pad(base, ((0, 0), (lo, hi)), mode="edge")
    return np.concatenate([padded[:, lo + c: lo + c + n] for c in context], axis=0).T.copy()


def combo_labels(y: np.ndarray) -> np.ndarray:
    """(frames,) combination index (bit c: class c starts; 0 none ... 7 kick+snare+hat) of
    (frames x 3) 0/1 class labels."""
    return (np.asarray(y, dtype=np.int64) @ (1 << np.arange(3))).astype(np.int64)


def class_probabilities(probs: np.ndarray) -> np.ndarray:
    """(frames x 3) kick, snare, hat probabilities of either head's output: the sigmoids as they
    are, or the softmax summed over the combinations holding each class."""
    return probs if probs.shape[1] == 3 else (probs @ MEMBERSHIP).astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    from scipy.special import softmax

    return softmax(z, axis=1)


def _check_head(head: str) -> None:
    from darc_bridge.errors import InputError

    if head not in HEADS:
        raise InputError(f"unknown drum model head {head!r}; choose from {', '.join(HEADS)}")


ARRAYS = ("mean", "scale", "w1", "b1", "w2", "b2")  # a model file's weights (an ensemble's: stacked)


@dataclass(frozen=True)
class DrumModel:
    """Standardisation and MLP weights (one hidden ReLU layer; three sigmoid outputs, or with
    head "combo" a softmax over the N_COMBOS class combinations)."""

    mean: np.ndarray
    scale: np.ndarray
    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray
    context: tuple[int, ...] = CONTEXT
    tilt: bool = False  # stem_features(tilt=...) it was fitted on
    head: str = "sigmoid"  # HEADS

    def predict(self, base: np.ndarray) -> np.ndarray:
        """(features, frames) `stem_features` -> (frames x 3) kick, snare, hat probabilities, or for
        the combo head (frames x N_COMBOS) combination probabilities. The first layer is summed
        over context offsets (standardisation folded in), never building the context matrix (a
        3-minute stem's would take 100 MB)."""
        if self.head == "combo":
            return onset_model.mlp_over_context(self, base, self.context, _softmax)
        return onset_model.mlp_over_context(self, base, self.context)

    def save(self, path: Path) -> Path:
        return _write(path, self, {k: getattr(self, k) for k in ARRAYS})

    @classmethod
    def load(cls, path: Path) -> DrumModel:
        """One model's file (an ensemble's file: `load`)."""
        model = load(path)
        if not isinstance(model, cls):
            raise ValueError(f"{path}: drum model file holds an ensemble of {len(model.members)} models; "
                             "read it with drum_model.load")
        return model



@dataclass(frozen=True)
class DrumEnsemble:
    """Drum models fitted at successive seeds, each on tune material rendered at its own seed
    (bagging: other stems, grooves, augmentations and initial weights), their outputs averaged.
    Why: a kit never heard is where one fit's quirks show; averaging fits that erred differently
    raised the folds' snare F1 (docs/evaluation.md, "An average of three MLPs")."""

    members: tuple[DrumModel, ...]

    def __post_init__(self) -> None:
        if not self.members or not all(isinstance(m, DrumModel) for m in self.members):
            raise ValueError("a drum model ensemble needs one or more DrumModel members")
        first = self.members[0]
        if any((m.context, m.tilt, m.head, m.w1.shape, m.w2.shape) !=
               (first.context, first.tilt, first.head, first.w1.shape, first.w2.shape) for m in self.members):
            raise ValueError("drum model ensemble members must share context, tilt, head and layer sizes")

    @property
    def context(self) -> tuple[int, ...]:
        return self.members[0].context

    @property
    def tilt(self) -> bool:
        return self.members[0].tilt

    @property
    def head(self) -> str:
        return self.members[0].head

    def predict(self, base: np.ndarray) -> np.ndarray:
        """The members' DrumModel.predict outputs, averaged (probabilities, so a mean is one too)."""
        return np.mean([m.predict(base) for m in self.members], axis=0, dtype=np.float64).astype(np.float32)

    def save(self, path: Path) -> Path:
        """One file: each array stacked over the members (a leading axis), `members` in its meta."""
        return _write(path, self.members[0], {k: np.stack([getattr(m, k) for m in self.members]) for k in ARRAYS},
                      members=len(self.members))


def _write(path: Path, model: DrumModel, arrays: dict[str, np.ndarray], **meta: int) -> Path:
    """A drum model file (`load` reads it): `model`'s features and head in the meta (and `meta`),
    `arrays` as float32, written to a temporary name and renamed."""
    head = {"format": FORMAT, "hop": onset_model.HOP, "n_mels": onset_model.N_MELS, "context": list(model.context),
            "tilt": model.tilt, "head": model.head, **meta}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        np.savez_compressed(fh, meta=np.frombuffer(json.dumps(head).encode(), dtype=np.uint8),
                            **{k: v.astype(np.float32) for k, v in arrays.items()})
    tmp.replace(path)
    return path


def load(path: Path) -> DrumModel | DrumEnsemble:
    """A drum model file: one model, or an ensemble (`members` in its meta, arrays stacked)."""
    with np.load(path) as data:
        meta = json.loads(bytes(data["meta"]).decode())
        if meta.get("format") != FORMAT or meta.get("hop") != onset_model.HOP or meta.get("n_mels") != onset_model.N_MELS:
            raise ValueError(f"{path}: drum model file does not match this version's features")
        arrays = {k: np.asarray(data[k], dtype=np.float32) for k in ARRAYS}
    head = str(meta.get("head", "sigmoid"))  # files written before the combo head hold sigmoids
    n = meta.get("members")
    stacks = arrays if n is not None else {k: v[None] for k, v in arrays.items()}
    if n is not None and (not isinstance(n, int) or n < 1 or any(v.shape[0] != n for v in arrays.values())):
        raise ValueError(f"{path}: drum model file says {n!r} members but holds arrays of other lengths")
    outputs = stacks["w2"].shape[-1]
    if head not in HEADS or outputs != (N_COMBOS if head == "combo" else 3):
        raise ValueError(f"{path}: drum model file has an unknown output head ({head}, {outputs} outputs)")
    members = tuple(DrumModel(**{k: v[i] for k, v in stacks.items()}, context=tuple(int(c) for c in meta["context"]),
                              tilt=bool(meta.get("tilt", False)), head=head) for i in range(stacks["w1"].shape[0]))
    return DrumEnsemble(members) if n is not None else members[0]


@functools.lru_cache(maxsize=2)
def load_model(path: str = str(MODEL_PATH)) -> DrumModel | DrumEnsemble:
    return load(Path(path))


def probabilities(audio: np.ndarray, sample_rate: int, model: DrumModel | DrumEnsemble | None = None) -> np.ndarray:
    """The model's output for a non-silent stem (DrumModel.predict: (frames x 3) kick, snare, hat
    probabilities, or combination probabilities; class_probabilities gives the former of both);
    frame f is at f / FPS s (the lead-in already taken off)."""
    model = model or load_model()
    probs = model.predict(stem_features(prepare(audio, sample_rate), model.tilt))
    return probs[int(round(LEAD_IN_S * FPS)):]


def combo_hits(probs: np.ndarray, threshold: float = THRESHOLD, min_gap_s: float = MIN_GAP_S,
               decision: str = COMBO_DECISION) -> list[np.ndarray]:
    """Per class, the hit frames of the combo head's (frames x N_COMBOS) output: an onset where
    1 - P(none) peaks at or above `threshold` (the first of peaks closer than `min_gap_s`), its
    classes read at that frame by `decision` (COMBO_DECISIONS)."""
    from darc_bridge.rhythm.nmf import _pick_onsets

    if decision not in COMBO_DECISIONS:
        raise ValueError(f"unknown combo decision {decision!r}; use one of {', '.join(COMBO_DECISIONS)}")
    peaks = _pick_onsets(1.0 - probs[:, 0], threshold, max(1, int(round(min_gap_s * FPS))))
    marginal = class_probabilities(probs)
    hits: list[list[int]] = [[], [], []]
    for f in peaks:
        if decision == "argmax":
            present = MEMBERSHIP[1 + int(np.argmax(probs[f, 1:]))] > 0
        else:
            present = marginal[f] >= threshold
            if not present.any():
                present = np.arange(3) == int(np.argmax(marginal[f]))
        for c in np.flatnonzero(present):
            hits[c].append(int(f))
    return [np.array(h, dtype=int) for h in hits]


def pick_hits(probs: np.ndarray, threshold: float | tuple[float, ...] = THRESHOLD, min_gap_s: float = MIN_GAP_S,
              on_kick_hat: float | None | str = "head", decision: str = COMBO_DECISION) -> list[np.ndarray]:
    """Per class, the hit frames of a model's output. Sigmoids: the frames where a class's
    probability peaks at or above `threshold` (one for all classes, or one per class; the first of
    peaks closer than `min_gap_s`). The combo head: combo_hits with `decision` (one threshold).
    `on_kick_hat`: a snare hit with a kick and a hat hit beside it (within the runner's DEDUPE_S)
    must have a snare probability of this instead, since a kick and a hat struck together explain
    the onset already (None: no such rule; "head": the head's own, SNARE_ON_KICK_HAT for sigmoids,
    COMBO_ON_KICK_HAT for the combo head)."""
    from darc_bridge.eval.runner import DEDUPE_S
    from darc_bridge.rhythm.nmf import _pick_onsets

    combo = probs.shape[1] == N_COMBOS
    if isinstance(on_kick_hat, str) and on_kick_hat != "head":
        raise ValueError(f"on_kick_hat: a probability, None or 'head', not {on_kick_hat!r}")
    if on_kick_hat == "head":
        on_kick_hat = COMBO_ON_KICK_HAT if combo else SNARE_ON_KICK_HAT
    if combo:
        if isinstance(threshold, tuple):
            raise ValueError("the combo head takes one threshold (for its onset strength), not one per class")
        hits = combo_hits(probs, threshold, min_gap_s, decision)
    else:
        gap = max(1, int(round(min_gap_s * FPS)))
        per_class = threshold if isinstance(threshold, tuple) else (threshold,) * probs.shape[1]
        hits = [_pick_onsets(probs[:, c], per_class[c], gap) for c in range(probs.shape[1])]
    if on_kick_hat is not None and len(hits) == 3:
        near = int(round(DEDUPE_S * FPS))
        snare = class_probabilities(probs)[:, 1]

        def beside(frames: np.ndarray, f: int) -> bool:
            return bool(frames.size) and int(np.min(np.abs(frames - f))) <= near

        hits[1] = np.array([f for f in hits[1] if snare[f] >= on_kick_hat
                            or not (beside(hits[0], f) and beside(hits[2], f))], dtype=hits[1].dtype)
    return hits



# ---------------------------------------------------------------- fit and training entry point


ABSENT_LOGIT = -30.0  # the combo head's output for a combination the training frames never held


def _combo_output(clf, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """(hidden x N_COMBOS) weights and biases of a fitted multi-class MLPClassifier, one column per
    combination index whether or not the frames held it (sklearn keeps only the classes it saw,
    and a single logistic unit when it saw two)."""
    w, b = clf.coefs_[1], clf.intercepts_[1]
    seen = [int(c) for c in clf.classes_]
    if len(seen) == 2:  # softmax of (0, z) is the logistic of z
        w, b = np.concatenate([np.zeros_like(w), w], axis=1), np.concatenate([[0.0], b])
    w2 = np.zeros((hidden, N_COMBOS), dtype=np.float32)
    b2 = np.full(N_COMBOS, ABSENT_LOGIT, dtype=np.float32)
    w2[:, seen], b2[seen] = w, b
    return w2, b2


def fit(x: np.ndarray, y: np.ndarray, seed: int, hidden: int, max_iter: int = 40,
        context: tuple[int, ...] = CONTEXT, tilt: bool = False, head: str = "sigmoid") -> DrumModel:
    """An MLP on frames (deterministic for a seed); output biases corrected for the subsampled
    hit-free frames, so THRESHOLD stays the decision boundary on a whole stem. `head` "combo":
    fitted on combo_labels, one softmax (the hit-free combination's logit raised by as much as its
    frames were thinned)."""
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits

    _check_head(head)
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-3
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), alpha=1e-3, batch_size=256, learning_rate_init=1e-3,
                        max_iter=max_iter, early_stopping=True, n_iter_no_change=4, random_state=seed)
    with threadpool_limits(limits=1, user_api="blas"):
        clf.fit((x - mean) / scale, combo_labels(y) if head == "combo" else y)
    log.info("fitted on %d frames x %d features in %d epochs", *x.shape, clf.n_iter_)
    if head == "combo":
        w2, b2 = _combo_output(clf, hidden)
        b2[0] -= np.log(NEGATIVE_SHARE)
    else:
        w2, b2 = clf.coefs_[1], clf.intercepts_[1] + np.log(NEGATIVE_SHARE)
    return DrumModel(mean.astype(np.float32), scale.astype(np.float32), clf.coefs_[0].astype(np.float32),
                     clf.intercepts_[0].astype(np.float32), w2.astype(np.float32), b2.astype(np.float32),
                     tuple(context), tilt, head)


MIX_SHARE = 0.0  # share of a recorded kit's stems played with one or two classes' pieces of another tune kit


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
    mix_share: float = MIX_SHARE  # stems of a recorded kit played by hybrid_kit with another source
    combos: bool = False  # scattered stems play every class combination equally often
    mask_ratio: float = 0.0  # masked_snares: snares this much quieter than a kick or hat are not taught
    random_stems: int = 0  # stems each played by a fresh procedural random_kit (domain randomisation)
    tilt: bool = False  # stem_features: the stem's spectral tilt taken off the plain log-mel
    sources: str = "base"  # tune_sources: which set of recorded tune sources (SOURCE_SETS)
    head: str = "sigmoid"  # DrumModel.head: three sigmoids, or a softmax over the class combinations
    members: int = 3  # > 1: a DrumEnsemble, member k fitted at seed + k on material rendered at that seed

    def __post_init__(self) -> None:
        _check_head(self.head)
        if self.members < 1:
            from darc_bridge.errors import InputError

            raise InputError(f"a drum model needs at least one member, not {self.members}")

    def member(self, k: int) -> Recipe:
        """The recipe of member k: everything seeded (rendering and fit) at seed + k."""
        return replace(self, seed=self.seed + k, members=1)


def combine(members: list) -> DrumModel | DrumEnsemble:
    """One fitted model as it is; several as their DrumEnsemble."""
    return members[0] if len(members) == 1 else DrumEnsemble(tuple(members))


def _source_names(sources: list) -> list[str]:
    return [getattr(s, "name", s) for s in sources]


def train(recipe: Recipe = Recipe(), out: Path = MODEL_PATH, sources: list | None = None) -> DrumModel | DrumEnsemble:
    """Fit on every tune source (`recipe.members` times, see Recipe.member) and write the weights to `out`."""
    from darc_bridge.data.kit_pack import check_training_kits
    from darc_bridge.eval.drum_material import training_frames, tune_sources

    t0 = time.perf_counter()
    sources = tune_sources(sources=recipe.sources) if sources is None else sources
    check_training_kits([k for k in sources if not isinstance(k, str)])
    fitted = []
    for k in range(recipe.members):  # one member's frames in memory at a time
        r = recipe.member(k)
        x, y = training_frames(r, sources)
        log.info("member %d/%d, sources %s: %d frames (%.0f s so far)", k + 1, recipe.members,
                 ", ".join(_source_names(sources)), x.shape[0], time.perf_counter() - t0)
        fitted.append(fit(x, y, r.seed, r.hidden, r.max_iter, r.context, r.tilt, r.head))
        del x, y
    model = combine(fitted)
    model.save(out)
    load_model.cache_clear()
    log.info("drum model written to %s after %.0f s", out, time.perf_counter() - t0)
    return model


def main(argv: list[str] | None = None) -> None:
    from darc_bridge.eval.drum_material import SOURCE_SETS
    from darc_bridge.eval.drum_scoring import cross_validate, held_out_report

    parser = argparse.ArgumentParser(description="train or cross-validate the drum transcriber's model (tune split)")
    parser.add_argument("command", choices=("train", "cv", "heldout"),
                        help="train: fit and write the model; cv: leave-one-kit-out over tune kits; "
                             "heldout: the gate's reference drums, before and now (once, at the end)")
    parser.add_argument("--set", type=Path, default=Path("/tmp/darc-gate-set"), help="heldout: gate set folder")
    parser.add_argument("--before", type=Path, default=None, help="heldout: also score this earlier model file")
    parser.add_argument("--stems", type=int, default=Recipe.stems_per_source, help="training stems per tune source")
    parser.add_argument("--hidden", type=int, default=Recipe.hidden)
    parser.add_argument("--seed", type=int, default=Recipe.seed)
    parser.add_argument("--members", type=int, default=Recipe.members,
                        help="models averaged, each fitted at its own seed on material rendered at that seed")
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--context", type=int, nargs="+", default=list(CONTEXT), help="frame offsets seen")
    parser.add_argument("--no-eq", action="store_true", help="no EQ augmentation")
    parser.add_argument("--mix-share", type=float, default=Recipe.mix_share, help="share of hybrid-kit stems")
    parser.add_argument("--mask-ratio", type=float, default=Recipe.mask_ratio, help="masked_snares ratio (0: off)")
    parser.add_argument("--random-stems", type=int, default=Recipe.random_stems,
                        help="stems played by procedural random kits (domain randomisation)")
    parser.add_argument("--tilt", action="store_true", help="take each stem's spectral tilt off the plain log-mel")
    parser.add_argument("--combos", action="store_true", help="scattered stems: class combinations equally often")
    parser.add_argument("--sources", choices=SOURCE_SETS, default=Recipe.sources,
                        help="recorded tune sources: the first 11, or those and the ones added (tune_sources)")
    parser.add_argument("--head", choices=HEADS, default=Recipe.head,
                        help="output layer: three sigmoids, or a softmax over the eight class combinations")
    parser.add_argument("--decisions", choices=COMBO_DECISIONS, nargs="*", default=(),
                        help="cv, combo head: also score these decisions, without and with the kick+hat rule")
    parser.add_argument("--thresholds", type=float, nargs="*", default=(), help="cv: also score these thresholds")
    parser.add_argument("--snare-thresholds", type=float, nargs="*", default=(),
                        help="cv: also score these snare thresholds (kick and hat at THRESHOLD)")
    parser.add_argument("--kick-hat-thresholds", type=float, nargs="*", default=(),
                        help="cv: also score these thresholds for a snare on a kick+hat (pick_hits)")
    parser.add_argument("--baseline", action="store_true", help="cv: score the extractor's model on the same stems")
    parser.add_argument("--folds", nargs="*", default=(), help="cv: leave out only these tune sources (exploring)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    recipe = Recipe(stems_per_source=args.stems, hidden=args.hidden, seed=args.seed, eq=not args.no_eq,
                    context=tuple(args.context), mix_share=args.mix_share,
                    combos=args.combos, mask_ratio=args.mask_ratio, random_stems=args.random_stems,
                    tilt=args.tilt, sources=args.sources, head=args.head, members=args.members)
    if args.command == "train":
        train(recipe, args.out)
    elif args.command == "heldout":
        print(json.dumps(held_out_report(args.set, args.before), indent=1))
    else:
        print(json.dumps(cross_validate(recipe, baseline=args.baseline, thresholds=tuple(args.thresholds),
                                        folds=tuple(args.folds), snare_thresholds=tuple(args.snare_thresholds),
                                        kick_hat_thresholds=tuple(args.kick_hat_thresholds),
                                        decisions=tuple(args.decisions)),
                         indent=1))


if __name__ == "__main__":
    main()
