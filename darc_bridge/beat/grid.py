"""The beat grid of a mix: tempo, beats and downbeats, used to place and quantise drums
and (later) as beat conditioning for the model, after JukeDrummer's beat-aware idea."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def snap_times(times: np.ndarray, grid_points: np.ndarray, amount: float) -> np.ndarray:
    """Move each time `amount` (0..1) of the way to its nearest grid point: 0 leaves it, 1 puts it on the grid."""
    t = np.asarray(times, dtype=float)
    a = float(np.clip(amount, 0.0, 1.0))
    pts = np.sort(np.asarray(grid_points, dtype=float))
    if a == 0.0 or len(pts) == 0 or t.size == 0:
        return t.copy()
    if len(pts) == 1:
        nearest = np.full(t.shape, pts[0])
    else:
        idx = np.clip(np.searchsorted(pts, t), 1, len(pts) - 1)
        left, right = pts[idx - 1], pts[idx]
        nearest = np.where(t - left <= right - t, left, right)
    return t + a * (nearest - t)


@dataclass
class BeatGrid:
    """Beat and downbeat times in seconds from the start of the region."""

    tempo: float  # beats per minute
    beats: np.ndarray
    downbeats: np.ndarray
    duration: float
    beats_per_bar: int = 4

    @property
    def beat_period(self) -> float:
        return 60.0 / self.tempo

    def subdivisions(self, per_beat: int = 4) -> np.ndarray:
        """Grid points between (and extrapolated beyond) the beats: 16ths by default."""
        if len(self.beats) == 0:
            return np.arange(0.0, self.duration, self.beat_period / per_beat)
        period = self.beat_period
        first = self.beats[0] - np.ceil(self.beats[0] / period) * period
        anchors = np.concatenate([np.arange(first, self.beats[0], period), self.beats])
        last = anchors[-1]
        anchors = np.concatenate([anchors, np.arange(last + period, self.duration + period, period)])
        pts = [a + i * (b - a) / per_beat for a, b in zip(anchors[:-1], anchors[1:], strict=True) for i in range(per_beat)]
        pts = np.array(pts + [anchors[-1]])
        return pts[(pts >= -1e-9) & (pts < self.duration)]

    def loop_period(self, prompt_duration: float, tolerance: float = 0.08) -> float:
        """How long one repeat of a looped prompt should last on this grid.

        A take of one or two bars is rarely cut exactly: when its length is within `tolerance`
        of a whole number of bars (or of beats, for a take shorter than a bar), that length is
        used, so the loop stays in time with the song; otherwise the take's own length is kept.
        """
        if self.tempo <= 0 or prompt_duration <= 0:
            return prompt_duration
        bar = self.beat_period * self.beats_per_bar
        unit = bar if prompt_duration >= 0.75 * bar else self.beat_period
        snapped = max(1, round(prompt_duration / unit)) * unit
        return snapped if abs(snapped - prompt_duration) <= tolerance * prompt_duration else prompt_duration

    def to_frame_features(self, frame_rate: float, n_frames: int, width_s: float = 0.04) -> np.ndarray:
        """(2, n_frames) beat and downbeat activations (triangles of `width_s`), for beat conditioning."""
        t = np.arange(n_frames) / frame_rate
        out = np.zeros((2, n_frames), dtype=np.float32)
        for row, times in enumerate((self.beats, self.downbeats)):
            for b in times:
                out[row] = np.maximum(out[row], np.clip(1.0 - np.abs(t - b) / width_s, 0.0, 1.0))
        return out

    def to_dict(self) -> dict:
        return {
            "tempo": float(self.tempo),
            "beats": [round(float(b), 4) for b in self.beats],
            "downbeats": [round(float(b), 4) for b in self.downbeats],
            "duration": float(self.duration),
            "beats_per_bar": int(self.beats_per_bar),
        }
