"""Run engines over an evaluation set and measure every case.

Eval set folder format (docs/evaluation.md):

    SET/
      <case>/mix.wav       drumless mix region (required)
      <case>/prompt.wav    rhythm prompt (required; looped or cut to the mix's length, as engines do)
      <case>/drums.wav     reference drums (optional; scored as the "reference" row, a sanity ceiling)
      <case>/case.json     optional ground truth: {"prompt_onsets": [{"time", "class", "strength"}],
                           "tempo": BPM, "beats": [s, ...]}; without it the prompt's onsets come from
                           the NMF rhythm extractor and the mix's grid from the beat tracker.

Systems are engine configurations: the kit engine following the prompt, the kit with rhythm off
(its grid groove), and with a checkpoint the DARC model with rhythm on and off (STAGE behaviour).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from darc_bridge.audio.io import Audio, load_audio, write_wav_atomic
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.engines import Engine, GenerationParams, create_engine
from darc_bridge.errors import InputError
from darc_bridge.eval import metrics
from darc_bridge.eval.transcribe import transcribe
from darc_bridge.rhythm.features import Onset, RhythmFeatures

log = logging.getLogger(__name__)

DEDUPE_S = 0.03  # transcribed hits of different classes this close are one onset


@dataclass
class EvalCase:
    name: str
    folder: Path
    mix: Audio
    prompt: Audio
    drums: Audio | None
    prompt_onsets: list[Onset]  # fitted to the mix's duration
    grid: BeatGrid


@dataclass
class SystemSpec:
    """One row of the report: an engine and the parameters it runs with."""

    name: str
    engine: str
    options: dict[str, Any] = field(default_factory=dict)
    rhythm_strength: float = 1.0
    temperature: float = 0.0  # kit: no humanisation; model: 1.0, sampled with a fixed seed
    reference: bool = False  # score the case's drums.wav instead of generating
    # With `reference`: the drums encoded and decoded by this checkpoint's codec first, the most a
    # model on that codec can score (it can only ever play what its codec reconstructs).
    codec_checkpoint: str | None = None
    # Engine generation options (GenerationParams.extra, engines/options.py), e.g. {"cfg_coef": 5.0}.
    extra: dict[str, Any] = field(default_factory=dict)


def default_systems(checkpoint: str | None = None, engine: str = "kit", kit_dir: str | None = None) -> list[SystemSpec]:
    """The systems of one report: the engine under test plus its baselines."""
    kit_opts = {"kit_dir": kit_dir} if kit_dir else {}
    systems = []
    if checkpoint is not None or engine == "darc":
        if checkpoint is None:
            raise InputError("--engine darc needs --checkpoint")
        opts = {"checkpoint": checkpoint}
        systems += [SystemSpec("darc", "darc", opts, 1.0, temperature=1.0),
                    SystemSpec("darc-rhythm-off", "darc", opts, 0.0, temperature=1.0)]
    systems += [SystemSpec("kit", "kit", kit_opts, 1.0), SystemSpec("kit-rhythm-off", "kit", kit_opts, 0.0),
                SystemSpec("reference", "none", reference=True)]
    return systems


def _case_truth(folder: Path) -> dict:
    path = folder / "case.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from exc


def load_case(folder: Path) -> EvalCase:
    """Read one case; missing or bad files raise InputError naming the case."""
    for required in ("mix.wav", "prompt.wav"):
        if not (folder / required).exists():
            raise InputError(f"eval case {folder.name}: {required} is missing")
    mix = load_audio(folder / "mix.wav", role=f"{folder.name} mix", allow_silent=True)
    prompt = load_audio(folder / "prompt.wav", role=f"{folder.name} prompt")
    drums = load_audio(folder / "drums.wav", role=f"{folder.name} drums") if (folder / "drums.wav").exists() else None
    truth = _case_truth(folder)
    if "prompt_onsets" in truth:
        onsets = [Onset(float(o["time"]), int(o["class"]), float(o.get("strength", 1.0))) for o in truth["prompt_onsets"]]
        rhythm = RhythmFeatures.from_onsets(onsets, prompt.duration)
    else:
        from darc_bridge.rhythm.nmf import extract_rhythm

        rhythm = extract_rhythm(prompt)
    if "beats" in truth and "tempo" in truth:
        beats = np.asarray(truth["beats"], dtype=float)
        beats = beats[beats < mix.duration]
        grid = BeatGrid(float(truth["tempo"]), beats, beats[::4], mix.duration)
    else:
        from darc_bridge.beat.tracking import estimate_beat_grid

        grid = estimate_beat_grid(mix)
    # the engines loop a short prompt in time with the song; the target follows the same rule
    fitted = rhythm.fit_to(mix.duration, loop_period=grid.loop_period(rhythm.duration)).onsets
    return EvalCase(folder.name, folder, mix, prompt, drums, fitted, grid)


def find_cases(set_dir: str | Path) -> list[Path]:
    root = Path(set_dir)
    if not root.is_dir():
        raise InputError(f"eval set folder not found: {root}")
    cases = sorted(d for d in root.iterdir() if d.is_dir() and (d / "mix.wav").exists())
    if not cases:
        raise InputError(f"no eval cases in {root}: expected subfolders holding mix.wav and prompt.wav")
    return cases


def merged_times(onsets: list[Onset]) -> np.ndarray:
    """Onset times with hits of any class within DEDUPE_S of the previous one counted once."""
    merged: list[float] = []
    for t in sorted(o.time for o in onsets):
        if not merged or t - merged[-1] > DEDUPE_S:
            merged.append(t)
    return np.array(merged)


def stem_onsets(stem: np.ndarray, sample_rate: int) -> tuple[list[Onset], np.ndarray]:
    """Transcribed class onsets and the merged onset times of a stem."""
    onsets = transcribe(stem, sample_rate).onsets
    return onsets, merged_times(onsets)


def score_stem(case: EvalCase, stem: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """Every metric of one stem against its case."""
    from darc_bridge.beat.tracking import estimate_beat_grid

    mono = stem.mean(axis=0) if stem.ndim == 2 else stem
    classes, times = stem_onsets(mono, sample_rate)
    # Merged as the stem's onsets are: a kick and a hat 10 ms apart in the prompt are one onset, as
    # they are in any stem that plays them (unmerged, exact drums scored onset F1 about 0.81).
    prompt_times = merged_times([o for o in case.prompt_onsets if o.cls < 3])
    stem_grid = estimate_beat_grid(mono, sample_rate) if np.any(mono) else BeatGrid(0.0, np.zeros(0), np.zeros(0), 0.0)
    mix_mono = case.mix.resampled(sample_rate).mono()
    n = min(mix_mono.size, mono.size)
    out: dict[str, Any] = {"onset": metrics.onset_f1(prompt_times, times)}
    out["per_class"] = metrics.per_class_f1(case.prompt_onsets, classes)
    out["grid_alignment"] = metrics.grid_alignment(times, case.grid)
    out["beat_f"] = metrics.beat_f_measure(case.grid.beats, stem_grid.beats)
    out.update(metrics.coherence(mono[:n], mix_mono[:n], sample_rate, stem_grid, case.grid)
               if stem_grid.tempo > 0 else {"coherence": 0.0})
    out["n_hits"] = int(times.size)
    out["stem_onsets"] = [o.to_dict() for o in classes]
    return out


def _load_codec(checkpoint: str):
    from darc_bridge.model.checkpoint import load_checkpoint

    return load_checkpoint(checkpoint).codec.eval()


def _through_codec(codec, audio: Audio) -> tuple[np.ndarray, int]:
    """`audio` encoded to tokens and decoded again (mono, at the codec's rate)."""
    from darc_bridge.model.codec import decode_tokens, encode_audio

    y = decode_tokens(codec, encode_audio(codec, audio))
    sr = int(codec.sample_rate)
    return y[:, : int(round(audio.duration * sr))], sr


def run_eval(
    set_dir: str | Path,
    out_dir: str | Path,
    systems: list[SystemSpec],
    seed: int = 0,
    engine_factory: Callable[[SystemSpec], Engine] | None = None,
) -> dict[str, Any]:
    """Generate and score every case with every system; write stems and the report. Returns the report dict."""
    from darc_bridge.eval.report import write_report

    cases = [load_case(f) for f in find_cases(set_dir)]  # refuse a bad set before writing anything
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    factory = engine_factory or (lambda s: create_engine(s.engine, **s.options))
    results: dict[str, dict[str, Any]] = {}
    for spec in systems:
        engine = None if spec.reference else factory(spec)
        if engine is not None:
            engine.load()
        codec = _load_codec(spec.codec_checkpoint) if spec.reference and spec.codec_checkpoint else None
        rows: dict[str, Any] = {}
        for case in cases:
            if spec.reference:
                if case.drums is None:
                    continue
                stem, sr, seconds = case.drums.samples, case.drums.sample_rate, 0.0
                if codec is not None:
                    stem, sr = _through_codec(codec, case.drums)
            else:
                params = GenerationParams(temperature=spec.temperature, rhythm_strength=spec.rhythm_strength,
                                          seed=seed, extra=dict(spec.extra))
                t0 = time.perf_counter()
                result = engine.generate(case.mix, case.prompt, params)
                seconds = time.perf_counter() - t0
                stem, sr = result.stem, result.sample_rate
                (out / "stems" / spec.name).mkdir(parents=True, exist_ok=True)
                write_wav_atomic(out / "stems" / spec.name / f"{case.name}.wav", stem, sr)
            row = score_stem(case, stem, sr)
            row["seconds"] = seconds
            rows[case.name] = row
            log.info("%s / %s: onset F1 %.3f", spec.name, case.name, row["onset"]["f1"])
        if rows:
            results[spec.name] = rows
    return write_report(out, cases, results)
