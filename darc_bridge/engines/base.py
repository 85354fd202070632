"""The Engine interface that the built-in kit and the DARC model both implement.

The CLI and the daemon only ever talk to this interface, so switching engines changes
nothing else: generate(mix, prompt, params, progress, cancel) -> drum stem.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from darc_bridge.audio import Audio
from darc_bridge.beat import BeatGrid
from darc_bridge.errors import Cancelled, InputError
from darc_bridge.rhythm import RhythmFeatures

ProgressCallback = Callable[[str, float], None]
"""progress(stage, fraction): stage is a short word ("rhythm", "beats", "render", "generate"...),
fraction is that stage's completion in 0..1."""


def no_progress(stage: str, fraction: float) -> None:
    """Default progress callback: ignore."""


class CancelToken:
    """Set from another thread (daemon cancel, Ctrl-C); engines check it between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("generation was cancelled")


@dataclass
class GenerationParams:
    """What a user can turn: the same knobs in the CLI, the daemon protocol and the DAW devices."""

    temperature: float = 1.0  # model: sampling temperature; kit: humanisation amount (0 = deterministic)
    rhythm_strength: float = 1.0  # 0 ignores the prompt, 1 follows it as trained, >1 pushes adherence (model)
    seed: int | None = None  # same seed, same input, same device: same stem
    quantize: float = 0.0  # 0..1: how far hits are snapped toward the mix's beat grid
    output_sample_rate: int | None = None  # default: the mix's sample rate
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific options

    RANGES = {"temperature": (0.0, 5.0), "rhythm_strength": (0.0, 4.0), "quantize": (0.0, 1.0)}

    def validate(self) -> GenerationParams:
        for name, (lo, hi) in self.RANGES.items():
            v = getattr(self, name)
            if not isinstance(v, int | float) or not np.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"{name} must be a number between {lo:g} and {hi:g}, got {v!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or not 0 <= self.seed < 2**32):
            raise InputError(f"seed must be an integer between 0 and 2^32-1, got {self.seed!r}")
        if self.output_sample_rate is not None and not 8000 <= int(self.output_sample_rate) <= 192000:
            raise InputError(f"output sample rate must be between 8000 and 192000 Hz, got {self.output_sample_rate}")
        return self

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("RANGES", None)
        return d


@dataclass
class GenerationResult:
    """The drum stem plus what it was made from (for MIDI export, reports and DAW naming)."""

    stem: np.ndarray  # (channels, frames) float32, never beyond +-1
    sample_rate: int
    rhythm: RhythmFeatures | None = None  # the rhythm that was followed (prompt fitted to the region)
    beat_grid: BeatGrid | None = None
    info: dict[str, Any] = field(default_factory=dict)
    # Per-piece stems (kick, snare, hats, toms, cymbals; only those that play), each like `stem`, sample-
    # aligned with it and summing to it; None when the engine renders the mix only.
    pieces: dict[str, np.ndarray] | None = None

    @property
    def duration(self) -> float:
        return self.stem.shape[-1] / float(self.sample_rate)


class Engine(ABC):
    """A drum generator that stays resident: load once, then generate many times."""

    name: str = "engine"

    @abstractmethod
    def load(self) -> None:
        """Load weights and warm up. Idempotent: later calls return at once."""

    @abstractmethod
    def generate(
        self,
        mix: Audio,
        prompt: Audio | None,
        params: GenerationParams,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        """Make a drum stem exactly as long as `mix` (already cut to the region).

        `prompt` is the rhythm recording (None: no rhythm, play what fits the mix).
        Must raise Cancelled promptly once `cancel` is set, and never return clipped audio.
        """

    def describe(self) -> dict[str, Any]:
        """State for ping replies and logs: engine name, device, whether loaded."""
        return {"engine": self.name, "device": "cpu", "loaded": True}
