"""Training on a tiny synthetic corpus: the loss goes down, the checkpoint loads in the engine,
and a run killed mid-way resumes from its last saved step."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from darc_bridge.audio.io import Audio
from darc_bridge.data.segments import SegmentSettings
from darc_bridge.data.synth_corpus import write_corpus
from darc_bridge.engines import GenerationParams, create_engine
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.train.cache import CacheSettings, build_cache
from darc_bridge.train.loop import (
    STATE_FILE,
    TrainSettings,
    condition_masks,
    latest_step_dir,
    prepare_model,
    train,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]
FAST = dict(batch_size=2, grad_accum=1, lr=3e-3, min_s=1.0, max_s=2.0, device="cpu", log_every=1000)

@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    write_corpus(root / "corpus", songs=2, duration=4.0, sample_rate=32000)
    ckpt = random_checkpoint("tiny", seed=0)
    ckpt.codec_source = "test:untrained codec (these tests check loop mechanics, not tokens)"
    save_checkpoint(ckpt, root / "init")
    build_cache(root / "corpus", root / "cache", ckpt.codec, ckpt.rhythm_settings,
                SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0), CacheSettings(shard_size=8))
    return root


def test_loss_goes_down_and_the_engine_loads_the_checkpoint(setup, tmp_path):
    result = train(setup / "cache", tmp_path / "run", str(setup / "init"),
                   TrainSettings(steps=24, save_every=12, **FAST))
    losses = result["losses"]
    assert len(losses) == 24 and np.mean(losses[-4:]) < 0.6 * np.mean(losses[:4])
    assert 0.2 < result["trainable_fraction"] < 0.8  # jump fine-tuning froze part of the model
    latest = latest_step_dir(tmp_path / "run")
    assert latest.name == "step_0000024" and (tmp_path / "run" / "step_0000012").is_dir()
    assert load_checkpoint(tmp_path / "run" / "latest").source == "train:jump:step24"
    engine = create_engine("darc", checkpoint=str(tmp_path / "run" / "latest"), device="cpu", warmup=False)
    mix = Audio(np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1, 16000)
    out = engine.generate(mix, None, GenerationParams(seed=1, extra={"top_k": 10}))
    assert out.stem.shape == (1, 16000) and np.all(np.isfinite(out.stem))


def _latest_step(run: Path) -> int:
    folder = latest_step_dir(run)
    return -1 if folder is None else int(folder.name.split("_")[1])


def test_a_killed_run_resumes_from_its_last_checkpoint(setup, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "darc_bridge.train", "--data", str(setup / "cache"), "--init", str(setup / "init"),
           "--out", str(run), "--steps", "500", "--save-every", "2", "--batch-size", "2", "--grad-accum", "1",
           "--lr", "3e-3", "--min-s", "1", "--max-s", "2", "--device", "cpu", "--mode", "jump",
           "--schedule", "constant", "--warmup-steps", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 150
        # wait for `latest` itself: a step folder exists before its checkpoint is complete
        while time.time() < deadline and _latest_step(run) < 4:
            time.sleep(0.2)
        assert _latest_step(run) >= 4, "training never reached step 4"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    saved = latest_step_dir(run)
    saved_step = torch.load(saved / STATE_FILE, weights_only=False)["step"]
    assert saved_step >= 4
    result = train(setup / "cache", run, None, TrainSettings(steps=500, save_every=1, **FAST), stop_after=2)
    assert result["start_step"] == saved_step and result["step"] == saved_step + 2
    state = torch.load(latest_step_dir(run) / STATE_FILE, weights_only=False)
    assert state["step"] == saved_step + 2
    adam_steps = {int(s["step"]) for s in state["optimizer"]["state"].values()}
    assert adam_steps == {saved_step + 2}  # the optimizer's moments were restored, not restarted


def test_modes_and_condition_dropout():
    ckpt = random_checkpoint("tiny", seed=0)
    assert prepare_model(ckpt, TrainSettings(mode="full")) == 1.0
    assert prepare_model(ckpt, TrainSettings(mode="jump")) < 0.8
    rng = np.random.default_rng(0)
    rhythm_on, context_on = condition_masks(rng, 20000, TrainSettings())
    assert abs(float(rhythm_on.mean()) - 0.5 * 0.8) < 0.02 and abs(float(context_on.mean()) - 0.9 * 0.8) < 0.02
    both_off = float(((rhythm_on == 0) & (context_on == 0)).float().mean())
    assert both_off > 0.2  # the CFG null rows
    stage_rhythm, _ = condition_masks(rng, 100, TrainSettings(mode="stage"))
    assert float(stage_rhythm.sum()) == 0.0


def test_cache_of_another_codec_is_refused(setup, tmp_path):
    from darc_bridge.errors import CheckpointError

    other = random_checkpoint("tiny", seed=3)
    other.codec_source = "test:another untrained codec"
    save_checkpoint(other, tmp_path / "other")
    with pytest.raises(CheckpointError, match="another codec"):
        train(setup / "cache", tmp_path / "run", str(tmp_path / "other"), TrainSettings(steps=2, **FAST))
    assert not Path(tmp_path / "run" / "latest").exists()
