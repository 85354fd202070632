"""The kit engine: the embedded default. It needs no weights and runs in well under a second.

It plays the prompt's rhythm on a drum kit, fitted to the mix: beat grid of the mix -> rhythm
of the prompt (looped or trimmed to the region) -> blend with the grid's own groove by
rhythm_strength -> quantise toward 16ths -> humanise by temperature -> render. The hits it
renders are the rhythm it reports, so MIDI export matches the audio exactly.

The kit is the built-in one, or any kit a user names (darc_bridge.kits.library: a folder of WAVs, a
Hydrogen drumkit, an SFZ or a SoundFont), set for the engine or per job (`params.extra["kit"]`);
`params.extra["stems"] == "split"` also renders one stem per kit piece (`GenerationResult.pieces`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from darc_bridge.audio.io import Audio, seconds
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.beat.tracking import METHODS, estimate_beat_grid
from darc_bridge.beat.tracking import warm_up as warm_up_beat_tracking
from darc_bridge.engines.base import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)
from darc_bridge.engines.drumkit import DrumKit
from darc_bridge.engines.groove import blend, grid_groove, humanise, quantize
from darc_bridge.engines.kitfiles import load_kit
from darc_bridge.engines.stems import STEMS_MODES, render_hits
from darc_bridge.errors import InputError
from darc_bridge.kits.library import KitEntry, kit_at_path, resolve_kit
from darc_bridge.rhythm.features import Onset, RhythmFeatures, RhythmSettings

log = logging.getLogger(__name__)

JOB_KITS_KEPT = 2  # kits named by jobs stay loaded (a user switching between two kits waits once for each)
FALLBACK = "playing the groove of the mix's beat grid instead"  # what a prompt without hits in the region gets


def _fresh_seed() -> int:
    """A random seed that is recorded, so a take the user liked can be made again."""
    return int(np.random.SeedSequence().entropy % (2**31))  # a seed any client can send back (OSC int32)


class KitEngine(Engine):
    """Plays the prompt's rhythm on the built-in kit or a kit of the user's (any format)."""

    name = "kit"
    renders_pieces = True  # GenerationResult.pieces with params.extra["stems"] == "split"

    def __init__(
        self,
        kit_dir: str | os.PathLike | None = None,
        beat_method: str = "librosa",
        beat_this_checkpoint: str | None = None,
        rhythm_settings: RhythmSettings = RhythmSettings(),
        kit: str | os.PathLike | None = None,
    ) -> None:
        """`kit`: a kit name (`darc-bridge kits`) or path; `kit_dir` is the older name for a kit path
        (a folder of samples)."""
        if beat_method not in METHODS:
            raise InputError(f"unknown beat method {beat_method!r}; choose one of: {', '.join(METHODS)}")
        if kit is not None and kit_dir is not None:
            raise InputError("give the kit once: kit or kit_dir, not both")
        if kit_dir is not None and not Path(kit_dir).exists():
            raise InputError(f"kit folder not found: {kit_dir}")
        if kit_dir is not None and not Path(kit_dir).is_dir():
            raise InputError(f"kit path is not a folder: {kit_dir}")
        self.kit_entry: KitEntry = kit_at_path(kit_dir) if kit_dir is not None else resolve_kit(kit)
        self.kit_dir = self.kit_entry.path or None
        self.beat_method = beat_method
        self.beat_this_checkpoint = beat_this_checkpoint
        self.rhythm_settings = rhythm_settings
        self._kits: dict[tuple[KitEntry, int], DrumKit] = {}
        self._loaded = False

    # ------------------------------------------------------------ Engine interface

    def load(self) -> None:
        """Read the kit once (a user folder is checked here, so a bad folder fails before any job)."""
        if self._loaded:
            return
        self.kit(44100)
        warm_up_beat_tracking()
        self._loaded = True

    def describe(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "device": "cpu",
            "loaded": self._loaded,
            "kit": self.kit_entry.path or self.kit_entry.name,
            "beat_method": self.beat_method,
        }

    def kit(self, sample_rate: int, spec: str | os.PathLike | None = None) -> DrumKit:
        """The engine's kit (or the kit `spec` names) at `sample_rate`, read and resampled once per
        rate. Of the kits named by jobs, the JOB_KITS_KEPT used last stay loaded."""
        entry = self.kit_entry if spec is None or str(spec) == "" else resolve_kit(spec)
        key = (entry, int(sample_rate))
        if key in self._kits:
            self._kits[key] = self._kits.pop(key)  # most recently used last
            return self._kits[key]
        kit = load_kit(entry, int(sample_rate))
        job_kits = [k for k in self._kits if k[0] != self.kit_entry]
        if entry != self.kit_entry and len(job_kits) >= JOB_KITS_KEPT:
            del self._kits[job_kits[0]]
        self._kits[key] = kit
        return kit

    def generate(
        self,
        mix: Audio,
        prompt: Audio | None,
        params: GenerationParams,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        params.validate()
        cancel = cancel or CancelToken()
        self.load()
        cancel.raise_if_cancelled()

        progress("beats", 0.0)
        grid = estimate_beat_grid(
            mix, method=self.beat_method, beat_this_checkpoint=self.beat_this_checkpoint
        )
        progress("beats", 1.0)
        cancel.raise_if_cancelled()

        rhythm: RhythmFeatures | None = None
        if prompt is not None:
            from darc_bridge.rhythm.nmf import extract_rhythm

            progress("rhythm", 0.0)
            taken = extract_rhythm(prompt, settings=self.rhythm_settings, progress=progress)
            rhythm = taken.fit_to(mix.duration, loop_period=grid.loop_period(taken.duration))
            if not taken.onsets:
                log.warning("no hits found in the prompt: %s", FALLBACK)
            elif not rhythm.onsets:  # e.g. a region shorter than the take's lead-in
                log.warning("the prompt has %d hits, but none in the part of it that plays over the %s region "
                            "(its first hit is at %s): %s", len(taken.onsets), seconds(mix.duration),
                            seconds(min(o.time for o in taken.onsets)), FALLBACK)
            progress("rhythm", 1.0)
            cancel.raise_if_cancelled()

        sample_rate = int(params.output_sample_rate or mix.sample_rate)
        n_frames = int(round(mix.samples.shape[-1] * sample_rate / mix.sample_rate))
        return self.render_from_rhythm(rhythm, grid, n_frames, sample_rate, params, progress, cancel)

    # ------------------------------------------------------------ testable core

    def plan_onsets(
        self, rhythm: RhythmFeatures | None, grid: BeatGrid, params: GenerationParams, rng: np.random.Generator
    ) -> list[Onset]:
        """The hits to play: prompt blended with the grid groove, quantised, humanised.

        At temperature 0 nothing random happens (the seed has no effect); above 0 the seed
        drives groove variations, which hits a partial blend keeps, jitter and velocity.
        """
        t = float(params.temperature)
        varied = rng if t > 0 else None
        groove = grid_groove(grid, temperature=t, rng=varied)
        prompt_onsets = list(rhythm.onsets) if rhythm is not None else []
        if prompt_onsets:
            strength = min(float(params.rhythm_strength), 1.0)  # the kit cannot follow harder than exactly
            hits = blend(prompt_onsets, groove, strength, varied)
        else:
            hits = groove
        hits = quantize(hits, grid.subdivisions(per_beat=4), params.quantize)
        hits = humanise(hits, t, rng)
        return [o for o in hits if 0.0 <= o.time < grid.duration]

    def render_from_rhythm(
        self,
        rhythm: RhythmFeatures | None,
        grid: BeatGrid,
        n_frames: int,
        sample_rate: int,
        params: GenerationParams,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        """Everything after analysis: plan the hits and render exactly `n_frames` at `sample_rate`.

        `rhythm` is the prompt's rhythm already fitted to the region (None: play the grid groove).
        """
        params.validate()
        seed = params.seed if params.seed is not None else _fresh_seed()
        rng = np.random.default_rng(seed)
        duration = n_frames / float(sample_rate)
        if abs(grid.duration - duration) > 1e-3:
            grid = BeatGrid(grid.tempo, grid.beats, grid.downbeats, duration, grid.beats_per_bar)
        hits = self.plan_onsets(rhythm, grid, params, rng)
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress("render", 0.0)
        stems = params.extra.get("stems") or "mix"
        if stems not in STEMS_MODES:
            raise InputError(f"stems must be one of {', '.join(STEMS_MODES)}, got {stems!r}")
        kit = self.kit(sample_rate, params.extra.get("kit"))
        stem, pieces = render_hits(hits, n_frames, sample_rate, kit, rng if params.temperature > 0 else None,
                                   split=stems == "split")
        progress("render", 1.0)
        if cancel is not None:
            cancel.raise_if_cancelled()
        n_classes = max([3, *(o.cls + 1 for o in hits)])
        played = RhythmFeatures.from_onsets(hits, duration, n_classes=n_classes)
        info = {
            "engine": self.name,
            "kit": kit.name,
            "tempo": round(float(grid.tempo), 2),
            "n_beats": int(len(grid.beats)),
            "n_hits": len(hits),
            "n_prompt_hits": len(rhythm.onsets) if rhythm is not None else 0,
            "seed": int(seed),
            "rhythm_strength": float(params.rhythm_strength),
            "quantize": float(params.quantize),
            "temperature": float(params.temperature),
            "peak_dbfs": round(float(20 * np.log10(max(float(np.max(np.abs(stem))) if stem.size else 0, 1e-12))), 2),
        }
        log.info("kit: %d hits at %.1f BPM, seed %d", len(hits), grid.tempo, seed)
        return GenerationResult(stem=stem, sample_rate=sample_rate, rhythm=played, beat_grid=grid, info=info,
                                pieces=pieces)
