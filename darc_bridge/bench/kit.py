"""Kit engine benchmarks: rhythm extraction and end-to-end generation for 30 s and 3 min regions.

Target on the 2-core CPU machine: a 3-minute region end to end (files in, stem + MIDI out) in
under 3 s, i.e. at least 60x real time, within 1 GB peak memory. The table's time is a warm job
(as in the daemon, which keeps the engine resident); the first job of a fresh process is shown too.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from darc_bridge.bench.common import BenchRow, run_isolated

REGIONS = (30.0, 180.0)
HYDROGEN_KIT = "/usr/share/hydrogen/data/drumkits/The Black Pearl 1.0/drumkit.xml"  # Debian hydrogen-drumkits
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"  # Debian fluid-soundfont-gm
BPM = 112.0


def _material(folder: Path, seconds: float) -> tuple[Path, Path]:
    from darc_bridge.audio import write_wav_atomic
    from darc_bridge.audio.music import synth_drumless_mix
    from darc_bridge.audio.prompts import random_pattern, synth_prompt

    mix, _, _ = synth_drumless_mix(seconds, bpm=BPM, sample_rate=44100, seed=1)
    mix_path = write_wav_atomic(folder / f"mix_{seconds:.0f}.wav", mix, 44100)
    onsets = random_pattern(seconds, BPM, seed=2)
    prompt = synth_prompt(onsets, seconds, 44100, voice="beatbox", seed=3)
    prompt_path = write_wav_atomic(folder / f"prompt_{seconds:.0f}.wav", prompt, 44100)
    return mix_path, prompt_path


def rhythm_case(seconds: float) -> dict:
    """Time the NMF rhythm extraction of a prompt of `seconds` (synthesis and imports excluded)."""
    from darc_bridge.audio import load_audio
    from darc_bridge.rhythm.nmf import extract_rhythm

    with tempfile.TemporaryDirectory() as tmp:
        _, prompt_path = _material(Path(tmp), seconds)
        audio = load_audio(prompt_path, role="prompt", limits=_limits())
        t0 = time.perf_counter()
        extract_rhythm(audio)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        features = extract_rhythm(audio)
        elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "first_call_s": first, "onsets": len(features.onsets), "x_realtime": seconds / elapsed}


def generate_case(seconds: float, stems: str = "mix", kit: str | None = None) -> dict:
    """Time files-to-files generation (load, beats, rhythm, render, write stem + MIDI; with
    stems="split" also the per-piece stems), on the built-in kit or `kit` (a name or path)."""
    from darc_bridge.engines import GenerationParams, create_engine
    from darc_bridge.pipeline import run_job

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mix_path, prompt_path = _material(folder, seconds)
        engine = create_engine("kit", kit=kit)
        t0 = time.perf_counter()
        engine.kit(44100)  # read (or render) the kit's samples: part of load(), timed on its own
        kit_load = time.perf_counter() - t0
        engine.load()
        timings = []
        for run in range(2):  # the first job in a fresh process pays one-off costs; the daemon stays warm
            t0 = time.perf_counter()
            out = run_job(engine, mix_path, prompt_path, folder / f"drums{run}.wav", GenerationParams(seed=0),
                          midi_path=folder / f"drums{run}.mid", limits=_limits(), stems=stems)
            timings.append(time.perf_counter() - t0)
    first, warm = timings
    return {"seconds": warm, "first_job_s": first, "x_realtime": seconds / warm, "stem_s": out.duration,
            "stems": len(out.pieces), "kit_load_s": kit_load}


def _limits():
    from darc_bridge.audio import AudioLimits

    return AudioLimits(max_duration_s=600.0)


def cases() -> list[BenchRow]:
    rows = []
    for seconds in REGIONS:
        label = f"{seconds:.0f}s"
        rows.append(run_isolated("kit", f"rhythm extraction {label}", "darc_bridge.bench.kit:rhythm_case", seconds))
        rows.append(run_isolated("kit", f"kit generate end-to-end {label}", "darc_bridge.bench.kit:generate_case",
                                 seconds))
    # issue 14: a recorded kit and per-piece stems (five more float WAVs), where the kits are installed
    for kit, label in ((HYDROGEN_KIT, "Hydrogen kit"), (SOUNDFONT, "GM SoundFont")):
        if Path(kit).exists():
            rows.append(run_isolated("kit", f"kit generate --stems split, {label}, 180s",
                                     "darc_bridge.bench.kit:generate_case", 180.0, "split", kit))
    return rows
