"""Choose a model's classifier-free guidance on a validation set of tune kits, never on the gate.

Why: how strongly a small, briefly trained DARC follows the prompt depends on the guidance
coefficient as much as on its weights. On the CPU model of 2026-12-01 (docs/training.md), onset,
kick and snare F1 all rose from coefficient 1.5 to 3 to 5 on a tune-kit validation set. MusicGen's
default of 3 is a setting for text prompts on a model trained for a long time, not a property of
this model. So the recipe measures a few coefficients and writes the best one into the checkpoint.
That value is the default every engine then uses (engines/darc.py reads `config.cfg_coef`).

The validation set is built exactly like the gate set (data/kit_corpus.write_gate_set), with the
same prompt families, grooves and noisy takes. It is played on the `tune` kits, from another seed,
so its grooves are not the training songs'. The held-out kits stay for the gate alone: a setting
picked on the gate would make the gate's figures a tuning score.

The score of a coefficient is the mean of the gate's rhythm-on targets (onset, kick and snare F1),
at rhythm strength 1, with the seed the gate uses.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from darc_bridge.audio.io import atomic_write

log = logging.getLogger(__name__)

# MusicGen's default (3), and the two stronger values the 2026-12-01 validation sweep measured
# best. Guidance of 10 or more over-sharpens a small model's logits.
CFG_CANDIDATES = (3.0, 5.0, 7.0)
# The gate's rhythm-on targets (train/gate.py TARGETS, less the on-off gap)
SCORED = ("onset_f1", "kick_f1", "snare_f1")


def guidance_score(summary: dict[str, Any]) -> float:
    """Mean of the scored figures of one system's summary row; an undefined figure counts as 0."""
    vals = [summary.get(k) for k in SCORED]
    return float(np.mean([v if v is not None and np.isfinite(v) else 0.0 for v in vals]))


def choose_guidance(valid_set: str | Path, out_dir: str | Path, checkpoint: str | Path,
                    candidates: tuple[float, ...] = CFG_CANDIDATES, seed: int = 0) -> dict[str, Any]:
    """Evaluate `checkpoint` at each guidance coefficient on `valid_set`; returns {"cfg_coef": best,
    "scores": {coef: score}, "figures": {coef: summary row}, "weights": ...} (also OUT/guidance.json).
    A guidance.json for the same weights, candidates and validation cases is reused."""
    from darc_bridge.errors import InputError
    from darc_bridge.eval import runner
    from darc_bridge.train.gate import gate_weights

    if not candidates or any(not c > 0 for c in candidates):
        raise InputError(f"guidance candidates must be positive numbers, got {list(candidates)}")
    out = Path(out_dir)
    done = out / "guidance.json"
    weights = gate_weights(checkpoint, sampling=False)
    names = [p.name for p in runner.find_cases(valid_set)]
    if done.is_file():
        previous = json.loads(done.read_text())
        if (previous.get("weights"), previous.get("candidates"), previous.get("case_names")) == \
                (weights, list(candidates), names):
            return previous
    opts = {"checkpoint": str(checkpoint)}
    systems = [runner.SystemSpec(f"cfg{c:g}", "darc", opts, 1.0, temperature=1.0, extra={"cfg_coef": float(c)})
               for c in candidates]
    report = runner.run_eval(valid_set, out / "eval", systems, seed=seed)
    rows = {f"{c:g}": report["summary"][f"cfg{c:g}"] for c in candidates}
    scores = {k: guidance_score(v) for k, v in rows.items()}
    best = max(candidates, key=lambda c: scores[f"{c:g}"])  # ties: the first, i.e. the weaker guidance
    result = {"cfg_coef": float(best), "scores": scores,
              "figures": {k: {f: v.get(f) for f in (*SCORED, "hat_f1")} for k, v in rows.items()},
              "candidates": list(candidates), "cases": len(report["cases"]), "case_names": names, "weights": weights}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(done, lambda tmp: Path(tmp).write_text(json.dumps(result, indent=1)))
    log.info("guidance %g chosen on %d validation cases (scores %s)", best, result["cases"],
             ", ".join(f"{k}: {v:.3f}" for k, v in scores.items()))
    return result


def with_guidance(checkpoint: str | Path, cfg_coef: float) -> bool:
    """Write `cfg_coef` as the checkpoint's default guidance; returns whether anything changed.
    Only the manifest is rewritten (atomically): the weight files and every other manifest key
    (the recipe's `decoder_steps`, `darc_state`, ...) stay as they are."""
    import os

    from darc_bridge.model.checkpoint import MANIFEST

    path = Path(checkpoint) / MANIFEST
    manifest = json.loads(path.read_text())
    if float(manifest["config"]["cfg_coef"]) == float(cfg_coef):
        return False
    manifest["config"]["cfg_coef"] = float(cfg_coef)
    manifest["guidance"] = "validation"
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=2)), suffix=".json")
    os.chmod(path, 0o644)  # as save_checkpoint leaves it: a checkpoint is meant to be shared
    return True
