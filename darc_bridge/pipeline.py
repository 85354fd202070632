"""One generation job from files to files: the path shared by the CLI and the daemon.

Validate everything first (inputs, outputs, parameters), then run the engine, then write the
stem and the MIDI under temporary names and rename, so a failure leaves no partial output.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from darc_bridge.audio import Audio, AudioLimits, load_audio, write_wav_atomic
from darc_bridge.audio.io import check_output_path
from darc_bridge.engines import CancelToken, Engine, GenerationParams, ProgressCallback, no_progress
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)

MIN_PROMPT_S = 0.25  # shorter than this holds no rhythm worth following


@dataclass
class JobOutputs:
    stem_path: Path
    midi_path: Path | None
    duration: float
    sample_rate: int
    info: dict


def load_inputs(
    mix_path: str | os.PathLike,
    prompt_path: str | os.PathLike | None,
    start: float | None = None,
    end: float | None = None,
    limits: AudioLimits = AudioLimits(),
) -> tuple[Audio, Audio | None]:
    """Load the mix region and the prompt. The prompt is kept whole: engines loop or trim its rhythm
    to the region (a short prompt is looped, a longer one is cut at the region's end)."""
    mix = load_audio(mix_path, role="mix", start=start, end=end, limits=limits, allow_silent=True)
    prompt = None
    if prompt_path:
        prompt = load_audio(prompt_path, role="prompt", limits=limits)
        if prompt.duration < MIN_PROMPT_S:
            raise InputError(
                f"prompt is too short to hold a rhythm: {prompt.duration:.2f}s (at least {MIN_PROMPT_S}s needed)"
            )
        if prompt.duration > mix.duration * 1.05:
            log.info("prompt (%.1fs) is longer than the region (%.1fs): its rhythm is cut at the region's end",
                     prompt.duration, mix.duration)
        elif prompt.duration < mix.duration * 0.95:
            log.info("prompt (%.1fs) is shorter than the region (%.1fs): its rhythm is looped",
                     prompt.duration, mix.duration)
    return mix, prompt


def run_job(
    engine: Engine,
    mix_path: str | os.PathLike,
    prompt_path: str | os.PathLike | None,
    out_path: str | os.PathLike,
    params: GenerationParams,
    *,
    midi_path: str | os.PathLike | None = None,
    start: float | None = None,
    end: float | None = None,
    limits: AudioLimits = AudioLimits(),
    overwrite: bool = True,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> JobOutputs:
    """Generate a drum stem for a region of `mix_path` following `prompt_path`; write it atomically."""
    params.validate()
    out = check_output_path(out_path, overwrite=overwrite)
    midi = check_output_path(midi_path, overwrite=overwrite) if midi_path else None
    progress("load", 0.0)
    mix, prompt = load_inputs(mix_path, prompt_path, start, end, limits)
    progress("load", 1.0)
    result = engine.generate(mix, prompt, params, progress=progress, cancel=cancel)
    if cancel is not None:
        cancel.raise_if_cancelled()
    progress("write", 0.0)
    stem_path = write_wav_atomic(out, result.stem, result.sample_rate, overwrite=overwrite)
    if midi is not None:
        from darc_bridge.rhythm.midi import write_midi_atomic

        if result.rhythm is None:
            raise InputError("no rhythm to write as MIDI (the engine reported none)")
        tempo = result.beat_grid.tempo if result.beat_grid is not None else 120.0
        write_midi_atomic(midi, result.rhythm.onsets, tempo=tempo, overwrite=overwrite)
    progress("write", 1.0)
    return JobOutputs(stem_path, midi, result.duration, result.sample_rate, result.info)
