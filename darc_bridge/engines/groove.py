"""Onset-list transforms for the kit engine: the grid's own groove, blending it with the prompt,
quantising toward the grid, and humanising.

All functions take and return lists of Onset (time s, class, strength 0..1), so each step can
be tested on its own and the final list is exactly what gets rendered and exported as MIDI.
"""

from __future__ import annotations

import numpy as np

from darc_bridge.beat.grid import BeatGrid, snap_times
from darc_bridge.rhythm.features import Onset

KICK, SNARE, HAT, OPEN_HAT = 0, 1, 2, 3
DEDUP_S = 0.03  # two hits of one class closer than this are one hit
JITTER_S = 0.003  # humanise: timing sd per unit of temperature
VELOCITY_SD = 0.06  # humanise: relative velocity sd per unit of temperature
MIN_STRENGTH = 0.05


def _beat_anchors(grid: BeatGrid) -> np.ndarray:
    """Every beat covering the region (the grid's beats plus even extrapolation before them)."""
    anchors = grid.subdivisions(per_beat=1)
    if len(anchors) == 0:
        anchors = np.array([0.0])
    return anchors


def _bar_positions(anchors: np.ndarray, grid: BeatGrid) -> np.ndarray:
    """Position of each beat in its bar (0 = downbeat), from the grid's first downbeat."""
    bpb = max(int(grid.beats_per_bar), 1)
    if len(grid.downbeats):
        first = int(np.argmin(np.abs(anchors - grid.downbeats[0])))
    else:
        first = 0
    return (np.arange(len(anchors)) - first) % bpb


def _kick_snare_positions(bpb: int) -> tuple[set[int], set[int]]:
    """Kick on 1 (and the middle of even bars: 1 and 3 in 4/4), snare on the other backbeats."""
    kicks = {0} | ({bpb // 2} if bpb >= 4 and bpb % 2 == 0 else set())
    if bpb % 2 == 0:
        snares = {p for p in range(1, bpb, 2)}
    else:
        snares = {p for p in range(1, bpb)}
    return kicks, snares


def grid_groove(grid: BeatGrid, temperature: float = 0.0, rng: np.random.Generator | None = None) -> list[Onset]:
    """A basic rock groove on the grid: kick on 1 and 3, snare on 2 and 4, closed hats on eighths.

    With temperature T > 0 (and an rng) each bar varies: an extra kick on the "and" of 3
    (probability 0.35 T), an open hat on the last eighth (0.25 T), a ghost snare before the
    backbeat (0.2 T); probabilities are capped at 0.9. T = 0 plays the plain pattern.
    """
    anchors = _beat_anchors(grid)
    positions = _bar_positions(anchors, grid)
    bpb = max(int(grid.beats_per_bar), 1)
    kicks, snares = _kick_snare_positions(bpb)
    vary = temperature > 0 and rng is not None

    def chance(p: float) -> bool:
        return vary and bool(rng.random() < min(0.9, p * temperature))

    out: list[Onset] = []
    for i, (beat, pos) in enumerate(zip(anchors, positions, strict=True)):
        period = anchors[i + 1] - beat if i + 1 < len(anchors) else grid.beat_period
        half = beat + period / 2.0
        if pos in kicks:
            out.append(Onset(beat, KICK, 1.0 if pos == 0 else 0.85))
        if pos in snares:
            out.append(Onset(beat, SNARE, 0.9))
        out.append(Onset(beat, HAT, 0.65 if pos == 0 else 0.55))
        last_beat = pos == bpb - 1
        if last_beat and chance(0.25):
            out.append(Onset(half, OPEN_HAT, 0.6))
        else:
            out.append(Onset(half, HAT, 0.4))
        if pos == bpb // 2 and bpb >= 4 and chance(0.35):
            out.append(Onset(half, KICK, 0.7))
        if (pos + 1) in snares and chance(0.2):
            out.append(Onset(beat + 3.0 * period / 4.0, SNARE, 0.25))
    return sorted((o for o in out if 0.0 <= o.time < grid.duration), key=lambda o: (o.time, o.cls))


def dedupe(onsets: list[Onset], window_s: float = DEDUP_S) -> list[Onset]:
    """Merge hits of one class closer than `window_s`: the earlier one stays, at the louder strength."""
    out: list[Onset] = []
    last: dict[int, int] = {}
    for o in sorted(onsets, key=lambda o: (o.time, o.cls)):
        j = last.get(o.cls)
        if j is not None and o.time - out[j].time < window_s:
            if o.strength > out[j].strength:
                out[j] = Onset(out[j].time, o.cls, o.strength)
            continue
        last[o.cls] = len(out)
        out.append(o)
    return out


def _top_fraction(onsets: list[Onset], fraction: float, rng: np.random.Generator | None) -> list[Onset]:
    """Keep round(fraction * n) hits, the strongest first (with an rng: strength times a random draw)."""
    n_keep = int(round(np.clip(fraction, 0.0, 1.0) * len(onsets)))
    if n_keep >= len(onsets):
        return list(onsets)
    if n_keep == 0:
        return []
    priority = np.array([o.strength for o in onsets], dtype=float)
    if rng is not None:
        priority = priority * rng.uniform(0.5, 1.0, size=len(onsets))
    # stable sort by descending priority, earlier hits first on ties
    order = np.lexsort((np.arange(len(onsets)), -priority))
    keep = set(order[:n_keep].tolist())
    return [o for i, o in enumerate(onsets) if i in keep]


def blend(
    prompt_onsets: list[Onset],
    grid_onsets: list[Onset],
    rhythm_strength: float,
    rng: np.random.Generator | None = None,
) -> list[Onset]:
    """Mix the prompt's hits with the grid groove by `rhythm_strength` s (clamped to 0..1).

    Keep the round(s * n_prompt) strongest prompt hits and the round((1 - s) * n_grid) strongest
    grid hits (downbeat kicks and backbeats first, off-beat hats last). With an rng, priorities
    are strengths times a uniform draw in [0.5, 1), so weaker hits sometimes win. A grid hit within
    30 ms of a kept prompt hit of the same class is dropped. s = 1 gives exactly the prompt,
    s = 0 exactly the grid groove, and the number of prompt hits kept never falls as s rises.
    """
    s = float(np.clip(rhythm_strength, 0.0, 1.0))
    kept_prompt = _top_fraction(sorted(prompt_onsets, key=lambda o: (o.time, o.cls)), s, rng)
    kept_grid = _top_fraction(sorted(grid_onsets, key=lambda o: (o.time, o.cls)), 1.0 - s, rng)
    by_class: dict[int, np.ndarray] = {}
    for c in {o.cls for o in kept_prompt}:
        by_class[c] = np.array([o.time for o in kept_prompt if o.cls == c])
    extra = [
        o for o in kept_grid
        if o.cls not in by_class or np.min(np.abs(by_class[o.cls] - o.time)) >= DEDUP_S
    ]
    return sorted(kept_prompt + extra, key=lambda o: (o.time, o.cls))


def quantize(onsets: list[Onset], grid_points: np.ndarray, amount: float) -> list[Onset]:
    """Move each hit `amount` (0..1) of the way to its nearest grid point (16ths from BeatGrid.subdivisions)."""
    if not onsets or amount <= 0:
        return list(onsets)
    moved = snap_times(np.array([o.time for o in onsets]), grid_points, amount)
    return dedupe([Onset(float(t), o.cls, o.strength) for t, o in zip(moved, onsets, strict=True)])


def humanise(onsets: list[Onset], temperature: float, rng: np.random.Generator) -> list[Onset]:
    """Timing jitter (sd 3 ms x T) and velocity variation (sd 6% x T); T = 0 returns the hits unchanged."""
    t = float(temperature)
    if t <= 0 or not onsets:
        return list(onsets)
    jitter = rng.normal(0.0, JITTER_S * t, size=len(onsets))
    scale = 1.0 + rng.normal(0.0, VELOCITY_SD * t, size=len(onsets))
    out = [
        Onset(max(0.0, o.time + float(dt)), o.cls, float(np.clip(o.strength * k, MIN_STRENGTH, 1.0)))
        for o, dt, k in zip(onsets, jitter, scale, strict=True)
    ]
    return sorted(out, key=lambda o: (o.time, o.cls))
