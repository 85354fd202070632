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
from darc_bridge.engines.options import GENERATION_OPTIONS, MODEL_OPTIONS
from darc_bridge.errors import Cancelled
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

    temperature: float = GENERATION_OPTIONS["temperature"].default  # model: sampling temperature; kit: humanisation
    rhythm_strength: float = GENERATION_OPTIONS["rhythm_strength"].default  # 0 ignores the prompt, >1 pushes
    seed: int | None = None  # same seed, same input, same device: same stem
    quantize: float = GENERATION_OPTIONS["quantize"].default  # 0..1: how far hits snap toward the beat grid
    output_sample_rate: int | None = None  # default: the mix's sample rate
    extra: dict[str, Any] = field(default_factory=dict)  # engine-specific options (engines/options.py)

    def validate(self) -> GenerationParams:
        """Check every knob against the one option table (darc_bridge.engines.options)."""
        for name in ("temperature", "rhythm_strength", "quantize"):
            spec = GENERATION_OPTIONS[name]
            setattr(self, name, spec.check(name, getattr(self, name)))
        if self.seed is not None:
            self.seed = GENERATION_OPTIONS["seed"].check("seed", self.seed)
        if self.output_sample_rate is not None:
            self.output_sample_rate = GENERATION_OPTIONS["sample_rate"].check("output sample rate",
                                                                            self.output_sample_rate)
        for name, value in self.extra.items():
            if name in MODEL_OPTIONS and value is not None:
                self.extra[name] = MODEL_OPTIONS[name].check(name, value)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


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
    # How many jobs the daemon may run at once on this engine. An engine that merges concurrent
    # calls into one decode batch (DARC) gains from several; one that renders in numpy does not.
    max_concurrent_jobs: int = 1
    # Whether a job without a prompt still plays a rhythm (the kit's grid groove) that MIDI can
    # hold; one that does not (DARC) gets a MIDI request without a prompt refused before it runs.
    rhythm_without_prompt: bool = True

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
