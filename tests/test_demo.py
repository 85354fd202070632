"""`make demo` (darc_bridge/demo.py): the kit job always, the DARC job when a model ships."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

from darc_bridge.model.checkpoint import random_checkpoint, save_checkpoint


def run_demo(out: Path, model: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DARC_BRIDGE_MODEL": str(model), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "darc_bridge.demo", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=600, check=True)


@pytest.mark.slow
def test_demo_without_a_model_writes_the_kit_job_and_says_how_to_get_darc(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    r = run_demo(out, tmp_path / "no-model")
    for name in ("demo_mix.wav", "demo_prompt.wav", "demo_drums.wav", "demo_rhythm.mid", "demo_mix_with_drums.wav"):
        assert (out / name).is_file(), name
    assert not (out / "demo_drums_darc.wav").exists()
    assert "No trained DARC model" in r.stdout and "make model" in r.stdout


@pytest.mark.slow
def test_demo_with_a_shipped_model_writes_a_darc_stem_beside_the_kit_stem(tmp_path: Path) -> None:
    model = tmp_path / "model"
    save_checkpoint(random_checkpoint("tiny", seed=0), model)  # wiring only: any loadable checkpoint
    out = tmp_path / "demo"
    r = run_demo(out, model)
    darc, kit = out / "demo_drums_darc.wav", out / "demo_drums.wav"
    assert darc.is_file() and kit.is_file()
    assert abs(sf.info(darc).duration - sf.info(out / "demo_mix.wav").duration) < 0.05
    assert "DARC drum stem" in r.stdout and "No trained DARC model" not in r.stdout
    assert "with the built-in kit engine and the shipped DARC model" in r.stdout
