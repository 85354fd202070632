"""The timbre-free rhythm representation shared by every engine and the model.

DARC keeps only the NMF activations H of the prompt (time x timbre class), never the bases W,
so the prompt's sound cannot leak into the drums: only *when* and *which class* survive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from darc_bridge.errors import InputError

FRAME_RATE = 50.0  # EnCodec 32 kHz token rate: one feature frame per model frame
MIN_PROMPT_S = 0.25  # shorter than this holds no rhythm worth following

# General MIDI drum notes for classes low -> high timbre: kick, snare, closed hat, then extras.
GM_NOTES = (36, 38, 42, 46, 45, 49, 51, 39)
CLASS_NAMES = ("kick", "snare", "hat", "open_hat", "tom", "crash", "ride", "clap")


def check_prompt_length(duration: float) -> None:
    """Refuse a prompt too short to hold a rhythm: one rule for `generate`, the daemon and `rhythm`
    (which shows what the engines will follow, so it must not accept what they refuse)."""
    if duration < MIN_PROMPT_S:
        raise InputError(f"prompt is too short to hold a rhythm: {duration:.2f}s (at least {MIN_PROMPT_S:g}s needed)")


@dataclass(frozen=True)
class RhythmSettings:
    """How rhythm features are extracted; recorded in checkpoints so training and inference agree."""

    n_classes: int = 3
    frame_rate: float = FRAME_RATE
    sample_rate: int = 22050  # analysis rate: prompts at any rate are resampled to this
    n_fft: int = 1024
    hop_length: int = 220  # 10 ms: the onset model's frames, so NMF and the model share one STFT
    n_mels: int = 0  # 0: linear magnitude spectrogram; >0: mel magnitudes before NMF
    magnitude_power: float = 0.5  # NMF input is |STFT| ** power: < 1 lets quiet hats weigh like loud kicks
    nmf_max_iter: int = 300
    nmf_beta_loss: str = "kullback-leibler"
    order_by: str = "centroid"  # how classes are ordered low -> high: "centroid" of each basis W
    onset_threshold: float = 0.5  # onset model probability a peak must reach: its decision boundary
    min_onset_gap_s: float = 0.04  # one hit: flams are 15-30 ms, 16ths at 180 BPM are 83 ms apart
    seed: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.n_classes <= 8:
            raise ValueError(f"n_classes must be between 1 and 8, got {self.n_classes}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RhythmSettings:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class Onset:
    """One hit heard in the prompt: time in seconds, timbre class (0 = lowest), strength 0..1."""

    time: float
    cls: int
    strength: float

    def to_dict(self) -> dict:
        return {"time": round(float(self.time), 4), "class": int(self.cls), "strength": round(float(self.strength), 4)}


@dataclass
class RhythmFeatures:
    """Activations (n_classes x frames, each row scaled to 0..1) at `frame_rate`, plus picked onsets."""

    activations: np.ndarray
    onsets: list[Onset]
    frame_rate: float = FRAME_RATE
    duration: float = 0.0
    settings: RhythmSettings = field(default_factory=RhythmSettings)

    @property
    def n_classes(self) -> int:
        return int(self.activations.shape[0])

    @property
    def n_frames(self) -> int:
        return int(self.activations.shape[1])

    def to_json_dict(self) -> dict:
        return {
            "onsets": [o.to_dict() for o in sorted(self.onsets, key=lambda o: (o.time, o.cls))],
            "n_classes": self.n_classes,
            "frame_rate": float(self.frame_rate),
            "duration": round(float(self.duration), 4),
        }

    def onset_times(self, cls: int | None = None) -> np.ndarray:
        return np.array(sorted(o.time for o in self.onsets if cls is None or o.cls == cls), dtype=float)

    def fit_to(self, duration: float, loop_period: float | None = None) -> RhythmFeatures:
        """Trim to `duration`, or loop the whole prompt until it covers `duration`.

        A tapped bar is meant to repeat over the region; a longer take is cut at the region's end.
        Repeats start at exact multiples of the period (never rounded to frames), so they do not
        drift against the song. `loop_period` (seconds) sets that period when looping: the engines
        pass the take's length snapped to whole bars of the song (BeatGrid.loop_period). The take
        is then cut or padded with silence to the period, never stretched: what was played inside
        it keeps its timing exactly.
        """
        if self.n_frames == 0 or self.duration <= 0:
            raise ValueError("cannot fit empty rhythm features")
        period = self.duration
        if loop_period is not None and self.duration < duration:
            if loop_period <= 0:
                raise ValueError(f"loop period must be positive, got {loop_period}")
            period = float(loop_period)
        fr = self.frame_rate
        n_target = int(round(duration * fr))
        n_period = min(self.n_frames, max(1, int(round(period * fr))))
        acts = np.zeros((self.n_classes, n_target), dtype=np.float32)
        onsets: list[Onset] = []
        repeat = 0
        while repeat == 0 or repeat * period < duration:
            shift = repeat * period
            start = int(round(shift * fr))
            seg = self.activations[:, : max(0, min(n_period, n_target - start))]
            acts[:, start : start + seg.shape[1]] = np.maximum(acts[:, start : start + seg.shape[1]], seg)
            onsets.extend(
                Onset(o.time + shift, o.cls, o.strength)
                for o in self.onsets
                if o.time < period and o.time + shift < duration
            )
            repeat += 1
        return RhythmFeatures(acts, onsets, fr, float(duration), self.settings)

    def quantized(self, grid_points: np.ndarray, amount: float) -> RhythmFeatures:
        """The rhythm with its hits moved `amount` (0..1) toward the nearest grid point.

        The activations are time-warped with the hits (piecewise linearly between them), so a
        model conditioned on them hears the tightened rhythm with the prompt's own hit shapes.
        """
        from darc_bridge.beat.grid import snap_times

        if amount <= 0 or not self.onsets:
            return self
        old_times = np.unique([o.time for o in self.onsets])
        new_times = snap_times(old_times, grid_points, amount)
        # anchors of a monotone map new time -> old time (hits snapped onto one point keep the first)
        keep = np.concatenate([[True], np.diff(new_times) > 1e-9]) & (new_times > 0) & (new_times < self.duration)
        anchors_new = np.concatenate([[0.0], new_times[keep], [self.duration]])
        anchors_old = np.concatenate([[0.0], old_times[keep], [self.duration]])
        t_new = np.arange(self.n_frames) / self.frame_rate
        src = np.interp(t_new, anchors_new, anchors_old) * self.frame_rate
        frames = np.arange(self.n_frames)
        acts = np.stack([np.interp(src, frames, row) for row in self.activations]).astype(np.float32)
        moved = dict(zip(old_times.tolist(), new_times.tolist(), strict=True))
        onsets = [Onset(moved[o.time], o.cls, o.strength) for o in self.onsets if 0 <= moved[o.time] < self.duration]
        return RhythmFeatures(acts, onsets, self.frame_rate, self.duration, self.settings)

    @classmethod
    def from_onsets(
        cls,
        onsets: list[Onset],
        duration: float,
        n_classes: int = 3,
        frame_rate: float = FRAME_RATE,
        decay_s: float = 0.05,
    ) -> RhythmFeatures:
        """Activations drawn from known onsets (exponential decays): for MIDI input and tests."""
        n = int(round(duration * frame_rate))
        acts = np.zeros((n_classes, n), dtype=np.float32)
        t = np.arange(n) / frame_rate
        for o in onsets:
            if 0 <= o.cls < n_classes:
                env = np.where(t >= o.time - 0.5 / frame_rate, np.exp(-np.maximum(t - o.time, 0) / decay_s), 0.0)
                acts[o.cls] = np.maximum(acts[o.cls], o.strength * env)
        return cls(acts, list(onsets), frame_rate, float(duration), RhythmSettings(n_classes=n_classes))
