"""The kit engine's renderer: hits -> the mixed stem and, on request, one stem per kit piece.

Producers mix drums piece by piece, so `--stems split` gives kick, snare, hats, toms and cymbals as
separate, sample-aligned stems. They must add up to the mixed stem exactly (within float rounding),
so the peak limiter scales every piece by the one gain it picks for the mix. A hit goes to the stem
of its rhythm class (a clap is on the snare stem), whatever sample the kit lends it.
"""

from __future__ import annotations

import numpy as np

from darc_bridge.engines.drumkit import CEILING_DBFS, MASTER_GAIN, PIECES, DrumKit, hit_gain
from darc_bridge.rhythm.features import Onset

STEM_PIECES = ("kick", "snare", "hats", "toms", "cymbals")
STEM_OF_PIECE = {"kick": "kick", "snare": "snare", "clap": "snare", "hat": "hats", "open_hat": "hats",
                 "tom": "toms", "crash": "cymbals", "ride": "cymbals"}
STEMS_MODES = ("mix", "split")


def stem_of_class(cls: int) -> str:
    return STEM_OF_PIECE[PIECES[min(max(int(cls), 0), len(PIECES) - 1)]]


def render_hits(
    onsets: list[Onset],
    n_frames: int,
    sample_rate: int,
    kit: DrumKit,
    rng: np.random.Generator | None = None,
    split: bool = False,
    master_gain: float = MASTER_GAIN,
    ceiling_dbfs: float = CEILING_DBFS,
) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """Render hits to a (2, n_frames) float32 stem, peak at most `ceiling_dbfs`; with `split`, also
    the per-piece stems (only pieces that play, in STEM_PIECES order) that sum to it.

    The hit's strength picks the velocity layer; within a layer samples alternate in order
    (round-robin), or with `rng` one is drawn at random per hit."""
    if kit.sample_rate != sample_rate:
        raise ValueError(f"kit is at {kit.sample_rate} Hz but the stem is at {sample_rate} Hz")
    n_frames = int(n_frames)
    buffers: dict[str, np.ndarray] = {}
    counters: dict[tuple[str, int], int] = {}
    for o in sorted(onsets, key=lambda o: (o.time, o.cls)):
        start = int(round(o.time * sample_rate))
        if start >= n_frames or start < 0:
            continue
        key, choices = kit.layer_for(o.cls, o.strength)
        if rng is not None and len(choices) > 1:
            sample = choices[int(rng.integers(0, len(choices)))]
        else:
            i = counters.get(key, 0)
            counters[key] = i + 1
            sample = choices[i % len(choices)]
        name = stem_of_class(o.cls) if split else "mix"
        if name not in buffers:
            buffers[name] = np.zeros((2, n_frames), dtype=np.float32)
        end = min(n_frames, start + sample.shape[1])
        buffers[name][:, start:end] += (master_gain * hit_gain(o.strength)) * sample[:, : end - start]
    if not split:
        mix = buffers.get("mix", np.zeros((2, n_frames), dtype=np.float32))
        mix *= np.float32(_limit_gain(float(np.max(np.abs(mix))) if mix.size else 0.0, ceiling_dbfs))
        return mix, None
    pieces = {p: buffers[p] for p in STEM_PIECES if p in buffers}
    mix = np.zeros((2, n_frames), dtype=np.float32)
    for x in pieces.values():
        mix += x
    gain = np.float32(_limit_gain(float(np.max(np.abs(mix))) if mix.size else 0.0, ceiling_dbfs))
    if gain != 1.0:
        for x in pieces.values():
            x *= gain
        mix = np.zeros((2, n_frames), dtype=np.float32)
        for x in pieces.values():
            mix += x
    return mix, pieces


def _limit_gain(peak: float, ceiling_dbfs: float) -> float:
    """The one gain that brings `peak` down to the ceiling (1 when it is below already)."""
    ceiling = 10.0 ** (ceiling_dbfs / 20.0)
    return ceiling / peak if peak > ceiling else 1.0
