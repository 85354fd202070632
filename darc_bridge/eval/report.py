"""Write an evaluation report: report.json (everything), report.md (tables) and one plot per case
showing the prompt's rhythm against what each system played."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from darc_bridge.audio.io import atomic_write
from darc_bridge.rhythm.features import CLASS_NAMES

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("onset_f1", "kick_f1", "snare_f1", "hat_f1", "grid_alignment", "beat_f", "coherence", "seconds")
CLASS_COLOURS = ("tab:red", "tab:blue", "tab:green")


def _flat(row: dict[str, Any]) -> dict[str, float]:
    flat = {"onset_f1": row["onset"]["f1"], "grid_alignment": row["grid_alignment"], "beat_f": row["beat_f"],
            "coherence": row["coherence"], "seconds": row["seconds"]}
    for name, scores in row["per_class"].items():
        flat[f"{name}_f1"] = scores["f1"]
    return flat


def summarise(rows: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Mean of each figure over cases (NaN-safe: a case with no hits has no grid alignment)."""
    flats = [_flat(r) for r in rows.values()]
    out = {}
    for key in SUMMARY_KEYS:
        vals = [f[key] for f in flats if key in f and not math.isnan(f[key])]
        out[key] = float(np.mean(vals)) if vals else float("nan")
    out["cases"] = len(flats)
    return out


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def plot_case(path: Path, case, results: dict[str, dict[str, Any]]) -> None:
    """Prompt hits (top row) against each system's transcribed hits, one row per system, by class."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in results if case.name in results[s]]
    fig, axes = plt.subplots(len(systems) + 1, 1, figsize=(10, 1.2 * (len(systems) + 1) + 0.6), sharex=True,
                             squeeze=False)
    rows = [("prompt", [o.to_dict() for o in case.prompt_onsets])]
    rows += [(s, results[s][case.name]["stem_onsets"]) for s in systems]
    for ax, (label, onsets) in zip(axes[:, 0], rows, strict=True):
        for b in case.grid.beats:
            ax.axvline(b, color="0.85", lw=0.8, zorder=0)
        for c in range(3):
            times = [o["time"] for o in onsets if o["class"] == c]
            ax.scatter(times, [c] * len(times), s=18, color=CLASS_COLOURS[c], marker="|" if label != "prompt" else "o")
        ax.set_yticks(range(3), CLASS_NAMES[:3], fontsize=7)
        ax.set_ylim(-0.6, 2.6)
        f1 = "" if label == "prompt" else f"  onset F1 {results[label][case.name]['onset']['f1']:.2f}"
        ax.set_title(f"{label}{f1}", fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    axes[-1, 0].set_xlim(0, case.mix.duration)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=90), suffix=".png")
    plt.close(fig)


def _markdown(summary: dict[str, dict[str, float]], results: dict[str, dict[str, Any]], cases) -> str:
    lines = ["# Evaluation report", "",
             f"{len(cases)} cases; onsets matched within 50 ms (mir_eval). Method: docs/evaluation.md.", "",
             "| system | " + " | ".join(SUMMARY_KEYS) + " |", "|---|" + "---:|" * len(SUMMARY_KEYS)]
    for name, s in summary.items():
        lines.append(f"| {name} | " + " | ".join(f"{s[k]:.3f}" for k in SUMMARY_KEYS) + " |")
    lines += ["", "## Onset F1 per case", "", "| case | " + " | ".join(results) + " |", "|---|" + "---:|" * len(results)]
    for case in cases:
        cells = [f"{results[s][case.name]['onset']['f1']:.3f}" if case.name in results[s] else "-" for s in results]
        lines.append(f"| {case.name} | " + " | ".join(cells) + f" |\n\n![{case.name}](plots/{case.name}.png)\n")
    return "\n".join(lines) + "\n"


def write_report(out: Path, cases, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """report.json, report.md and plots/<case>.png under `out`; returns the JSON content."""
    summary = {name: summarise(rows) for name, rows in results.items()}
    (out / "plots").mkdir(parents=True, exist_ok=True)
    for case in cases:
        plot_case(out / "plots" / f"{case.name}.png", case, results)
    report = {"summary": summary, "systems": results,
              "cases": {c.name: {"prompt_onsets": [o.to_dict() for o in c.prompt_onsets],
                                 "tempo": float(c.grid.tempo), "duration": c.mix.duration} for c in cases}}
    report = _json_safe(report)
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=1)))
    atomic_write(out / "report.md", lambda tmp: Path(tmp).write_text(_markdown(summary, results, cases)))
    log.info("report written to %s", out)
    return report
