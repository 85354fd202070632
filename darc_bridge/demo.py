"""`make demo`: the main job end to end on a fresh machine.

Synthesises a drumless mix and a beatboxed rhythm prompt, runs `darc-bridge generate` and
`darc-bridge rhythm` on them exactly as a user would, and prints where everything landed.
When the trained DARC model ships (models/darc-mini, or $DARC_BRIDGE_MODEL), the same job also
runs through `--engine darc` and its stem lands next to the kit's; without it the demo says so
and how to make one, and still finishes with the kit engine.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.audio import write_wav_atomic
from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.audio.prompts import synth_prompt
from darc_bridge.rhythm import Onset

DEMO_BPM = 100.0
DEMO_SECONDS = 16.0


def demo_prompt_onsets(bpm: float, bars: int = 2) -> list[Onset]:
    """A two-bar beatbox groove: boom on 1 and the 'and' of 3, pff on 2 and 4, ts on the 8ths."""
    beat = 60.0 / bpm
    onsets = []
    for bar in range(bars):
        t0 = bar * 4 * beat
        onsets += [Onset(t0, 0, 1.0), Onset(t0 + 2.5 * beat, 0, 0.8)]
        onsets += [Onset(t0 + beat, 1, 0.9), Onset(t0 + 3 * beat, 1, 0.9)]
        onsets += [Onset(t0 + i * beat / 2, 2, 0.5 + 0.2 * (i % 2 == 0)) for i in range(8)]
    return sorted(onsets, key=lambda o: o.time)


def make_material(out: Path) -> tuple[Path, Path]:
    """Write demo_mix.wav (no drums) and demo_prompt.wav (two beatboxed bars) into `out`."""
    mix, _, _ = synth_drumless_mix(DEMO_SECONDS, bpm=DEMO_BPM, sample_rate=44100, seed=7)
    mix_path = write_wav_atomic(out / "demo_mix.wav", mix, 44100)
    bars = 2
    prompt = synth_prompt(demo_prompt_onsets(DEMO_BPM, bars), bars * 4 * 60.0 / DEMO_BPM, 44100, voice="beatbox", seed=3)
    prompt_path = write_wav_atomic(out / "demo_prompt.wav", prompt, 44100)
    return mix_path, prompt_path


def cli(*args: str) -> None:
    cmd = [sys.executable, "-m", "darc_bridge.cli.main", *args]
    print("$ darc-bridge " + " ".join(shlex.quote(a) for a in args), flush=True)
    subprocess.run(cmd, check=True)


def darc_demo(out: Path, mix_path: Path, prompt_path: Path) -> Path | None:
    """The same job through the shipped DARC model; None (and a line saying why) when none ships."""
    from darc_bridge.model.shipped import shipped_dir

    model = shipped_dir()
    if not (model / "darc.json").is_file():
        print(f"\nNo trained DARC model at {model}, so no DARC stem: `make model` trains one "
              "(docs/training.md).", flush=True)
        return None
    stem = out / "demo_drums_darc.wav"
    cli("generate", "--engine", "darc", "--mix", str(mix_path), "--prompt", str(prompt_path), "--out", str(stem),
        "--seed", "1")
    return stem


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo_out", help="folder for the demo files")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    mix_path, prompt_path = make_material(out)
    stem, midi, plot = out / "demo_drums.wav", out / "demo_rhythm.mid", out / "demo_rhythm.png"
    cli("generate", "--mix", str(mix_path), "--prompt", str(prompt_path), "--out", str(stem),
        "--midi", str(midi), "--quantize", "0.5", "--seed", "1")
    cli("rhythm", str(prompt_path), "--plot", str(plot), "--quiet")
    darc_stem = darc_demo(out, mix_path, prompt_path)
    drums, sr = sf.read(stem, always_2d=True)
    mixed, _ = sf.read(mix_path, always_2d=True)
    preview = mixed + drums
    preview /= max(1.0, float(np.max(np.abs(preview))) / 0.98)
    preview_path = write_wav_atomic(out / "demo_mix_with_drums.wav", preview.T, sr)
    engines = ("the built-in kit engine and the shipped DARC model" if darc_stem is not None
               else "the built-in kit engine (no model weights needed)")
    print(f"\nDemo done in {time.perf_counter() - t0:.1f}s with {engines}.")
    print(f"  drumless mix:     {mix_path}")
    print(f"  rhythm prompt:    {prompt_path}")
    print(f"  drum stem:        {stem}")
    print(f"  rhythm MIDI:      {midi}")
    print(f"  rhythm plot:      {plot}")
    print(f"  mix + drums:      {preview_path}")
    if darc_stem is not None:
        print(f"  DARC drum stem:   {darc_stem}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
