"""One generation job from files to files: the path shared by the CLI and the daemon.

Validate everything first (inputs, outputs, parameters), then run the engine, then check that
every output can be made, then write them all together (darc_bridge.outputs): a failure leaves
no partial output and no orphan stem. With `stems="split"` the per-piece stems (`X.kick.wav`,
`X.snare.wav`...) join the same all-or-none set as further outputs.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.audio import Audio, AudioLimits, load_audio
from darc_bridge.audio.io import check_output_path, refuse_clash
from darc_bridge.engines import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)
from darc_bridge.engines.stems import STEM_PIECES, STEMS_MODES
from darc_bridge.errors import InputError, OutputError
from darc_bridge.outputs import OutputFile, OutputFolder, Planned, commit_outputs
from darc_bridge.rhythm.features import check_prompt_length

log = logging.getLogger(__name__)

NO_RHYTHM_FOR_MIDI = ("no rhythm to write as MIDI: this engine followed none (the darc engine needs a prompt for "
                      "that); give a prompt or ask for no MIDI")


@dataclass
class JobOutputs:
    stem_path: Path
    midi_path: Path | None
    duration: float
    sample_rate: int
    info: dict
    files: dict[str, Path] = field(default_factory=dict)  # every output by role ("stem", "midi", ...)

    @property
    def pieces(self) -> dict[str, Path]:
        """The per-piece stems written (stems="split"), in STEM_PIECES order."""
        return {p: self.files[p] for p in STEM_PIECES if p in self.files}


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
        check_prompt_length(prompt.duration)
        if prompt.duration > mix.duration * 1.05:
            log.info("prompt (%.1fs) is longer than the region (%.1fs): its rhythm is cut at the region's end",
                     prompt.duration, mix.duration)
        elif prompt.duration < mix.duration * 0.95:
            log.info("prompt (%.1fs) is shorter than the region (%.1fs): its rhythm is looped",
                     prompt.duration, mix.duration)
    return mix, prompt


@dataclass
class OutputPlan:
    """Where the daemon puts a job's outputs: one open folder, one base name for all of them
    (numbered together on a clash), a tag unique to this attempt for its temporary names, and a
    callback that journals each file's identity before it appears (crash recovery proves with it
    which files are its own)."""

    folder: OutputFolder
    name: str
    midi: bool
    tag: str
    on_planned: Planned | None = None
    midi_optional: bool = True  # an engine that followed no rhythm (DARC without a prompt): no MIDI
    stems: str = "mix"  # "split": the per-piece stems join the set (numbered with it on a clash)


def _wav_writer(samples: np.ndarray, sample_rate: int, subtype: str = "FLOAT"):
    data = np.asarray(samples, dtype=np.float32)
    data = data.T if data.ndim == 2 else data
    if not np.all(np.isfinite(data)):
        raise OutputError("refusing to write audio holding NaN or infinity")
    return lambda fh: sf.write(fh, data, int(sample_rate), subtype=subtype, format="WAV")


def _midi_writer(result: GenerationResult):
    from darc_bridge.rhythm.midi import onsets_to_midi

    onsets = result.rhythm.onsets
    tempo = result.beat_grid.tempo if result.beat_grid is not None else 120.0
    midi = onsets_to_midi(onsets, tempo=tempo, n_classes=max([o.cls + 1 for o in onsets] + [3]))
    return lambda fh: midi.save(file=fh)


def _split(path: Path) -> tuple[str, str]:
    """A file name as (base, suffix): 'take.wav' -> ('take', '.wav')."""
    return (path.stem, path.suffix) if path.suffix else (path.name, "")


def write_outputs(result: GenerationResult, files: dict[str, tuple[OutputFolder, str, str]], tag: str, *,
                  overwrite: bool = False, numbered: bool = False, on_planned: Planned | None = None
                  ) -> dict[str, Path]:
    """Write a result's outputs (`files`: role -> (folder, base, suffix)) all together or none.

    Everything that can fail before a file appears (NaN audio, no rhythm for the MIDI) is checked
    first. Roles: "stem", "midi", and a piece name ("kick"...) for each of `result.pieces` asked for
    (e.g. files["kick"] = (folder, base, ".kick.wav")): all are committed as one set."""
    writers = {"stem": lambda: _wav_writer(result.stem, result.sample_rate)}
    # Per-piece stems (issue 14: GenerationResult.pieces) are further roles named by their piece.
    for piece, samples in (getattr(result, "pieces", None) or {}).items():
        writers[piece] = lambda s=samples: _wav_writer(s, result.sample_rate)
    if "midi" in files:
        if result.rhythm is None:
            raise InputError(NO_RHYTHM_FOR_MIDI)
        writers["midi"] = lambda: _midi_writer(result)
    planned = [OutputFile(role, folder, base, suffix, writers[role]()) for role, (folder, base, suffix) in
               files.items()]
    return commit_outputs(planned, tag, overwrite=overwrite, numbered=numbered, on_planned=on_planned)


def run_job(
    engine: Engine,
    mix_path: str | os.PathLike,
    prompt_path: str | os.PathLike | None,
    out_path: str | os.PathLike | None,
    params: GenerationParams,
    *,
    midi_path: str | os.PathLike | None = None,
    start: float | None = None,
    end: float | None = None,
    limits: AudioLimits = AudioLimits(),
    overwrite: bool = True,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
    plan: OutputPlan | None = None,
    stems: str = "mix",
) -> JobOutputs:
    """Generate a drum stem for a region of `mix_path` following `prompt_path`; write the stem (and
    MIDI) together or not at all: to `out_path`/`midi_path` (the CLI), or as `plan` says (the daemon).

    `stems`: "mix" (the stem only) or "split" (also one stem per kit piece that plays; kit engine)."""
    params.validate()
    stems = plan.stems if plan is not None else stems
    if stems not in STEMS_MODES:
        raise InputError(f"stems must be one of {', '.join(STEMS_MODES)}, got {stems!r}")
    if stems == "split":
        if not getattr(engine, "renders_pieces", False):
            raise InputError(f"the {engine.name} engine renders one mixed stem only; per-piece stems "
                             f"(stems split) need the kit engine")
        params = replace(params, extra={**params.extra, "stems": "split"})
    folders: list[OutputFolder] = []
    try:
        if plan is not None:
            files = {"stem": (plan.folder, plan.name, ".wav")}
            if plan.midi:
                files["midi"] = (plan.folder, plan.name, ".mid")
            if stems == "split":
                files.update({p: (plan.folder, plan.name, f".{p}.wav") for p in STEM_PIECES})
        else:
            if not out_path:
                raise OutputError("no output path given")
            files = {}
            pieces = piece_paths(out_path) if stems == "split" else {}
            taken = [(f"the {role} file", Path(path)) for role, path in (("mix", mix_path), ("prompt", prompt_path))
                     if path]
            for role, path in (("stem", out_path), ("midi", midi_path), *pieces.items()):
                if path:
                    p = check_output_path(path, overwrite=overwrite)
                    refuse_clash(role, p, taken)
                    taken.append((f"the {role} output", p))
                    folders.append(OutputFolder.open(p.parent.resolve()))
                    files[role] = (folders[-1], *_split(p))
        if "midi" in files and not prompt_path and not getattr(engine, "rhythm_without_prompt", True) and plan is None:
            raise InputError(NO_RHYTHM_FOR_MIDI)  # now, not after the whole job ran
        progress("load", 0.0)
        mix, prompt = load_inputs(mix_path, prompt_path, start, end, limits)
        engine.load()  # after every check: a typo must not wait for a model to load (idempotent)
        progress("load", 1.0)
        result = engine.generate(mix, prompt, params, progress=progress, cancel=cancel)
        if cancel is not None:
            cancel.raise_if_cancelled()
        if plan is not None and plan.midi_optional and result.rhythm is None and "midi" in files:
            log.info("the engine followed no rhythm: no MIDI file is written")
            del files["midi"]
        if stems == "split":
            if result.pieces is None:
                raise InputError(f"the {engine.name} engine returned no per-piece stems")
            for p in STEM_PIECES:  # only the pieces that play are written
                if p not in result.pieces:
                    files.pop(p, None)
        progress("write", 0.0)
        written = write_outputs(result, files, plan.tag if plan else secrets.token_hex(8),
                                overwrite=overwrite and plan is None, numbered=plan is not None,
                                on_planned=plan.on_planned if plan else None)
    finally:
        for f in folders:
            f.close()
    progress("write", 1.0)
    return JobOutputs(written["stem"], written.get("midi"), result.duration, result.sample_rate, result.info,
                      written)
