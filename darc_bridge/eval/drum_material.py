"""The drum transcriber's training material: stems rendered from the `tune` split only, with their truth.

Why a module of its own: the material is what the model (eval/drum_model.py) is fitted on and what
its cross-validation (eval/drum_scoring.py) scores, but the transcriber never needs it at run time;
apart, the model's module holds only what decides, and the split tables keep the gate's held-out
kits unseen here (darc_bridge.kits.splits; every source goes through check_training_kits).

Material: grooves of data/grooves.py (meters, feels, ghost notes, open hats, fills, crashes, rides,
rests) played by data/kit_corpus.render_kit on the tune Hydrogen kits and on the tune General MIDI
programs of FluidR3_GM (kits/soundfont.py), plus the synthetic drums the evaluation also scores
(the kit engine's built-in kit, the `acoustic` and `electro` families of DARC's training songs).
Every piece is labelled as the gate counts it (grooves.PIECE_CLASS: toms and claps are snares,
open hats, rides and crashes are hats). Half the stems are "scattered" (each class on random steps,
independently): in a groove nearly every snare comes with a hat, and a model trained on grooves
alone hears a hat in every snare. Augmentation: velocity layers, per-piece gain, pitch, level and
rooms (kit_corpus.DrumAugment), a three-band EQ, stems with only some pieces playing, and a light
degradation (low-pass, noise, or a codec-like blur: the magnitude smeared over neighbouring frames
and coarsely quantised). Options tried and kept off (drum_model.Recipe): hybrid kits (hybrid_kit),
untaught masked snares (masked_snares), balanced combinations (scattered_hits' `combos`); stems of
procedural kits are eval/drum_random_kits.py's.

More recorded tune sources (`Recipe.sources = "enlarged"`, `--sources enlarged`: hydrogen-data's
TR808EmulationKit and five GM programs of TimGM6mb, kits.splits' TRANSCRIBER_HYDROGEN_KITS and
SOUNDFONT_PROGRAMS) left the 11 old folds level (snare 0.762 -> 0.765, precision up, recall down)
and, measured once on the gate's held-out kits, lowered snare F1 0.582 -> 0.442: kept off.
"""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
from scipy.signal import butter, sosfilt

from darc_bridge.eval.drum_model import (
    CONTEXT,
    FPS,
    LEAD_IN_S,
    MIX_SHARE,
    NEGATIVE_SHARE,
    SAMPLE_RATE,
    Recipe,
    prepare,
    stacked,
    stem_features,
)

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


def training_frames(recipe: Recipe, sources: list) -> tuple[np.ndarray, np.ndarray]:
    """Every training frame and label of one fit (recipe.seed): the sources' stems, the synthetic
    timbres' and the procedural kits' (eval/drum_random_kits.py, none unless `recipe.random_stems`)."""
    from darc_bridge.eval.drum_random_kits import random_kit_frames  # it imports this module

    parts = _source_parts(recipe, sources) + _synthetic_frames(recipe) + random_kit_frames(recipe)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
