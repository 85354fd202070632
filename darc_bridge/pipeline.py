"""One generation job from files to files: the path shared by the CLI and the daemon.

Validate everything first (inputs, outputs, parameters), then run the engine, then write the
stem and the MIDI under temporary names and rename, so a failure leaves no partial output.
With `stems="split"` the per-piece stems (`X.kick.wav`, `X.snare.wav`...) are written beside `X.wav`
the same way; if any output fails, the ones already renamed are removed again (all or nothing).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from darc_bridge.audio import Audio, AudioLimits, load_audio, write_wav_atomic
from darc_bridge.audio.io import check_output_path
from darc_bridge.engines import CancelToken, Engine, GenerationParams, ProgressCallback, no_progress
from darc_bridge.engines.stems import STEM_PIECES, STEMS_MODES
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
    pieces: dict[str, Path] = field(default_factory=dict)  # per-piece stems written (stems="split")


def piece_paths(out_path: str | os.PathLike) -> dict[str, Path]:
    """Where the per-piece stems of `X.wav` go: `X.kick.wav`, `X.snare.wav`, ... (STEM_PIECES order)."""
    out = Path(out_path)
    return {p: out.with_name(f"{out.stem}.{p}{out.suffix or '.wav'}") for p in STEM_PIECES}


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
    stems: str = "mix",
) -> JobOutputs:
    """Generate a drum stem for a region of `mix_path` following `prompt_path`; write it atomically.

    `stems`: "mix" (the stem only) or "split" (also one stem per kit piece that plays; kit engine)."""
    params.validate()
    if stems not in STEMS_MODES:
        raise InputError(f"stems must be one of {', '.join(STEMS_MODES)}, got {stems!r}")
    if stems == "split" and not getattr(engine, "renders_pieces", False):
        raise InputError(f"the {engine.name} engine renders one mixed stem only; per-piece stems "
                         f"(stems split) need the kit engine")
    out = check_output_path(out_path, overwrite=overwrite)
    midi = check_output_path(midi_path, overwrite=overwrite) if midi_path else None
    pieces_out = ({p: check_output_path(q, overwrite=overwrite) for p, q in piece_paths(out).items()}
                  if stems == "split" else {})
    if stems == "split":
        params = replace(params, extra={**params.extra, "stems": "split"})
    progress("load", 0.0)
    mix, prompt = load_inputs(mix_path, prompt_path, start, end, limits)
    progress("load", 1.0)
    result = engine.generate(mix, prompt, params, progress=progress, cancel=cancel)
    if cancel is not None:
        cancel.raise_if_cancelled()
    if stems == "split" and result.pieces is None:
        raise InputError(f"the {engine.name} engine returned no per-piece stems")
    if midi is not None and result.rhythm is None:
        raise InputError("no rhythm to write as MIDI (the engine reported none)")
    progress("write", 0.0)
    written: list[Path] = []
    try:  # all outputs or none: each is renamed into place, and removed again if a later one fails
        pieces_written = {}
        for piece, samples in (result.pieces or {}).items() if stems == "split" else ():
            pieces_written[piece] = write_wav_atomic(pieces_out[piece], samples, result.sample_rate,
                                                     overwrite=overwrite)
            written.append(pieces_written[piece])
        stem_path = write_wav_atomic(out, result.stem, result.sample_rate, overwrite=overwrite)
        written.append(stem_path)
        if midi is not None and result.rhythm is not None:
            from darc_bridge.rhythm.midi import write_midi_atomic

            tempo = result.beat_grid.tempo if result.beat_grid is not None else 120.0
            write_midi_atomic(midi, result.rhythm.onsets, tempo=tempo, overwrite=overwrite)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    progress("write", 1.0)
    return JobOutputs(stem_path, midi, result.duration, result.sample_rate, result.info, pieces_written)
