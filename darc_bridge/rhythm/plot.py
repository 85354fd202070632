"""A picture of what the extractor heard: one lane per class, activations and picked onsets.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), so it
is safe inside the daemon and in tests without a display.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from darc_bridge.audio.io import atomic_write
from darc_bridge.rhythm.features import CLASS_NAMES, RhythmFeatures

LANE_HEIGHT_IN = 1.1


def plot_rhythm(features: RhythmFeatures, path: str | os.PathLike, title: str | None = None) -> Path:
    """Save a PNG with one lane per class: the activation curve and its onsets (marker size and
    stem height follow strength). Written atomically."""
    k = max(features.n_classes, 1)
    fig = Figure(figsize=(10, 0.8 + LANE_HEIGHT_IN * k), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(k, 1, sharex=True, squeeze=False)[:, 0]
    t = np.arange(features.n_frames) / features.frame_rate
    for cls, ax in enumerate(axes):
        name = CLASS_NAMES[cls] if cls < len(CLASS_NAMES) else f"class {cls}"
        if features.n_frames:
            ax.fill_between(t, features.activations[cls], color=f"C{cls}", alpha=0.25, linewidth=0)
            ax.plot(t, features.activations[cls], color=f"C{cls}", linewidth=0.8)
        hits = [o for o in features.onsets if o.cls == cls]
        if hits:
            times = np.array([o.time for o in hits])
            strengths = np.array([o.strength for o in hits])
            ax.vlines(times, 0, strengths, color="black", linewidth=0.8)
            ax.scatter(times, strengths, s=10 + 40 * strengths, color="black", zorder=3)
        ax.set_ylim(0, 1.1)
        ax.set_ylabel(f"{name}\n({len(hits)})", rotation=0, ha="right", va="center")
        ax.set_yticks([])
    axes[-1].set_xlim(0, max(features.duration, t[-1] if t.size else 0.0, 1e-3))
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or f"rhythm: {len(features.onsets)} onsets, {features.duration:.2f} s")
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"), suffix=".png")
