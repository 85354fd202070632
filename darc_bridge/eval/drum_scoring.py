"""How the drum transcriber's model is scored while choosing its settings, and once on held-out kits.

Why a module of its own: the scoring is the instrument that chose the model's settings, never part
of transcribing. The leave-one-kit-out cross-validation (cross_validate, `python -m
darc_bridge.eval.drum_model cv`) fits on all tune sources but one and scores clean stems of the one
left out, as eval/runner.py scores (SCORE_COLUMNS: kick, snare, hat and onset F1), with snare
precision, recall and the two superposition errors (snare_errors: false snares on a kick+hat,
snares missed under a cymbal). held_out_report (`... heldout`) scores the gate's reference drums
with both transcribers (and an earlier model file), once, at the end: the held-out figures are
reported, never tuned on (figures: docs/evaluation.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from darc_bridge.eval.drum_material import _source_parts, _synthetic_frames, render_stem, tune_sources
from darc_bridge.eval.drum_model import (
    COMBO_DECISION,
    FPS,
    SAMPLE_RATE,
    SNARE_ON_KICK_HAT,
    THRESHOLD,
    DrumEnsemble,
    DrumModel,
    Recipe,
    combine,
    fit,
    load,
    load_model,
    pick_hits,
    probabilities,
)
from darc_bridge.eval.drum_random_kits import random_kit_frames

log = logging.getLogger(__name__)


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


def cross_validate(recipe: Recipe = Recipe(), val_stems: int = 6, baseline: bool = False,  # noqa: B008 (frozen)
                   thresholds: tuple[float, ...] = (), folds: tuple[str, ...] = (),
                   snare_thresholds: tuple[float, ...] = (),
                   kick_hat_thresholds: tuple[float, ...] = (),
                   decisions: tuple[str, ...] = (), fitter=None) -> dict[str, list[float]]:
    """Leave one tune source out: fit on the others, score clean stems of the left-out one
    (SCORE_COLUMNS). `folds`: leave out only these sources (a quick look while exploring; a choice
    is made on all of them). `decisions` (combo head): also score these COMBO_DECISIONS, each
    without and with the kick+hat rule at SNARE_ON_KICK_HAT. `fitter`: another model kind,
    fitter(frames, labels, recipe) -> a model with `predict(stem_features)` and `tilt` (eval/drum_cnn.py;
    None: drum_model's MLP, drum_model.fit). With `recipe.members` > 1 each fold's model is the members'
    DrumEnsemble, as drum_model.train makes it."""
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

