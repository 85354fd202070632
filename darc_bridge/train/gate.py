"""The eval gate a model must pass before it ships as the default (issue 10's targets).

It runs the model with rhythm on and off over the gate set (held-out kits, every prompt voice
family, syncopated grooves with rests and fills, clean and noisy takes; data/kit_corpus.py) through
the project's evaluation (eval/runner.py: onsets and the drum transcriber), next to the reference
drums, whose figures are the ceiling the transcriber allows. Writes gate.json, gate.md, the full
eval report and a spectrogram plot per case (prompt, reference, rhythm on, rhythm off).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from darc_bridge.audio.io import atomic_write

log = logging.getLogger(__name__)

# Issue 10: onset F1 against the prompt, kick and snare F1 through the transcriber, and the gain of
# rhythm strength 1 over 0 in onset F1.
TARGETS = {"onset_f1": 0.7, "kick_f1": 0.7, "snare_f1": 0.7, "gap": 0.2}


def _value(x: Any) -> float | None:
    """A figure as a float, or None where it is undefined (no hits: NaN in the eval, null in its JSON)."""
    return float(x) if x is not None and np.isfinite(x) else None


def gate_figures(summary: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The gate's figures and verdict from an eval report's summary (rows darc, darc-rhythm-off, reference).
    An undefined figure (None) fails its check."""
    on, off = summary["darc"], summary["darc-rhythm-off"]
    fig: dict[str, Any] = {k: _value(on.get(k)) for k in ("onset_f1", "kick_f1", "snare_f1", "hat_f1",
                                                          "grid_alignment", "beat_f")}
    a, b = _value(on.get("onset_f1")), _value(off.get("onset_f1"))
    fig["gap"] = None if a is None or b is None else a - b
    fig["rhythm_off_onset_f1"] = b
    for row, key in (("reference", "reference"), ("reference-through-codec", "codec_reference")):
        ref = summary.get(row)
        fig[key] = {k: _value(ref.get(k)) for k in ("onset_f1", "kick_f1", "snare_f1", "hat_f1")} if ref else None
    fig["cases"] = int(on["cases"])
    fig["checks"] = {k: fig[k] is not None and fig[k] >= t for k, t in TARGETS.items()}
    fig["passed"] = all(fig["checks"].values())
    fig["targets"] = dict(TARGETS)
    return fig


def spectrogram_plot(path: Path, title: str, rows: list[tuple[str, np.ndarray]], sample_rate: int) -> None:
    """Log-mel spectrograms stacked, one per row (up to 16 kHz: hi-hats show or are missing)."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 1.6 * len(rows) + 0.5), sharex=True, squeeze=False)
    for ax, (label, x) in zip(axes[:, 0], rows, strict=True):
        mel = librosa.feature.melspectrogram(y=x.astype(np.float32), sr=sample_rate, n_mels=96, fmax=sample_rate / 2)
        db = librosa.power_to_db(mel + 1e-10, ref=float(np.max(mel)) or 1.0, top_db=80)  # each row to its peak
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=-80, vmax=0,
                  extent=(0, x.size / sample_rate, 0, mel.shape[0]))
        ax.set_yticks([])
        ax.set_title(label, fontsize=8, loc="left")
    axes[0, 0].set_title(title + "\n" + rows[0][0], fontsize=8, loc="left")
    axes[-1, 0].set_xlabel("time (s)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=80), suffix=".png")
    plt.close(fig)


def gate_weights(checkpoint: str | Path, sampling: bool = True) -> dict[str, str]:
    """What a verdict is about: the model's weight files and the transcriber (weights and code), by
    SHA-256, and (`sampling`) the checkpoint's default guidance and top-k, which the gate samples
    with. A checkpoint folder can be rewritten (the recipe's WORK/model, its guidance chosen by
    train/guidance.py) and the transcriber retrained, so a gate.json whose weights differ is stale,
    whatever its checkpoint path says."""
    import hashlib

    from darc_bridge.eval import drum_model, transcribe

    manifest = json.loads((Path(checkpoint) / "darc.json").read_text())
    weights = {name: str(v["sha256"]) for name, v in manifest["files"].items()}
    if sampling:
        weights["sampling"] = f"cfg_coef={float(manifest['config']['cfg_coef']):g} top_k={manifest['config']['top_k']}"
    # its weights and its decision code (thresholds, rules) alike
    parts = [drum_model.MODEL_PATH, Path(drum_model.__file__), Path(transcribe.__file__)]
    weights["transcriber"] = hashlib.sha256(b"".join(p.read_bytes() for p in parts)).hexdigest()
    return weights


def run_gate(set_dir: str | Path, out_dir: str | Path, checkpoint: str, seed: int = 0) -> dict[str, Any]:
    """Evaluate `checkpoint` on the gate set; returns the gate figures (also in OUT/gate.json)."""
    from darc_bridge.audio.io import load_audio
    from darc_bridge.eval.runner import SystemSpec, run_eval

    out = Path(out_dir)
    done = out / "gate.json"
    weights = gate_weights(checkpoint)
    if done.is_file():
        previous = json.loads(done.read_text())
        if previous.get("checkpoint") == str(Path(checkpoint).resolve()) and previous.get("weights") == weights:
            return previous
    opts = {"checkpoint": checkpoint}
    systems = [SystemSpec("darc", "darc", opts, 1.0, temperature=1.0),
               SystemSpec("darc-rhythm-off", "darc", opts, 0.0, temperature=1.0),
               SystemSpec("reference", "none", reference=True),
               SystemSpec("reference-through-codec", "none", reference=True, codec_checkpoint=checkpoint)]
    report = run_eval(set_dir, out / "eval", systems, seed=seed)
    gate = gate_figures(report["summary"])
    gate["checkpoint"] = str(Path(checkpoint).resolve())
    gate["weights"] = weights
    plots = out / "spectrograms"
    plots.mkdir(parents=True, exist_ok=True)
    for case in sorted(report["cases"]):
        folder = Path(set_dir) / case
        rows = [("prompt", folder / "prompt.wav"), ("reference drums (held-out kit)", folder / "drums.wav"),
                ("darc, rhythm on", out / "eval" / "stems" / "darc" / f"{case}.wav"),
                ("darc, rhythm off", out / "eval" / "stems" / "darc-rhythm-off" / f"{case}.wav")]
        loaded = [(label, load_audio(p, role=label, allow_silent=True)) for label, p in rows if p.is_file()]
        sr = loaded[0][1].sample_rate
        on = report["systems"]["darc"][case]
        meta = json.loads((folder / "case.json").read_text())
        spectrogram_plot(plots / f"{case}.png",
                         f"{case}: kit {meta.get('kit')}, prompt {meta.get('prompt_voice')}"
                         f"{', noisy' if meta.get('noise_snr_db') else ''}, {meta.get('feel')}; "
                         f"onset F1 on {on['onset']['f1']:.2f}",
                         [(label, a.resampled(sr).mono()) for label, a in loaded], sr)
    atomic_write(done, lambda tmp: Path(tmp).write_text(json.dumps(gate, indent=1)))
    atomic_write(out / "gate.md", lambda tmp: Path(tmp).write_text(gate_markdown(gate)))
    log.info("gate %s: %s", "passed" if gate["passed"] else "failed", gate["checks"])
    return gate


def _cell(x: float | None) -> str:
    return "-" if x is None else f"{x + 0.0:.3f}".replace("-0.000", "0.000")


def gate_markdown(g: dict[str, Any]) -> str:
    ref, coded = g.get("reference") or {}, g.get("codec_reference") or {}
    lines = ["# DARC eval gate", "", f"{g['cases']} cases from held-out kits (eval/ holds the full report, "
             "spectrograms/ a plot per case). The reference drums (the held-out kit playing the prompt's groove) "
             "show the ceiling the transcriber allows; the same drums through the model's codec show the "
             "ceiling its codec allows.", "",
             "| figure | model | target | met | reference drums | reference through the codec |",
             "|---|---:|---:|---|---:|---:|"]
    for k in ("onset_f1", "kick_f1", "snare_f1", "gap", "hat_f1", "grid_alignment"):
        target = TARGETS.get(k)
        lines.append(f"| {k} | {_cell(g[k])} | {'' if target is None else f'>= {target}'} | "
                     f"{'' if target is None else ('yes' if g['checks'][k] else 'no')} | {_cell(ref.get(k))} | "
                     f"{_cell(coded.get(k))} |")
    sampling = (g.get("weights") or {}).get("sampling")
    lines += ["", f"Rhythm off (STAGE behaviour): onset F1 {_cell(g['rhythm_off_onset_f1'])}.",
              *([f"Sampled with the model's defaults: {sampling} (temperature 1)."] if sampling else []),
              f"Verdict: **{'passed' if g['passed'] else 'failed'}**."]
    return "\n".join(lines) + "\n"
