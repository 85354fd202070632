"""DDP through torchrun: two CPU processes (gloo) train on different batches and end with the same weights."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from darc_bridge.data.segments import SegmentSettings
from darc_bridge.data.synth_corpus import write_corpus
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.train.cache import CacheSettings, build_cache

pytestmark = pytest.mark.slow

WORKER = textwrap.dedent("""
    import json, os, sys
    from darc_bridge.train.loop import TrainSettings, train
    cache, out, init, report = sys.argv[1:5]
    s = TrainSettings(steps=3, batch_size=1, grad_accum=1, lr=3e-3, min_s=1.0, max_s=2.0, save_every=3, device="cpu")
    r = train(cache, out, init, s)
    with open(os.path.join(report, f"rank{r['rank']}.json"), "w") as fh:
        json.dump({k: r[k] for k in ("rank", "world", "losses", "weights_digest", "step")}, fh)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_processes_stay_in_sync(tmp_path):
    write_corpus(tmp_path / "corpus", songs=1, duration=4.0, sample_rate=32000)
    ckpt = random_checkpoint("tiny", seed=0)
    ckpt.codec_source = "test:untrained codec (these tests check loop mechanics, not tokens)"
    save_checkpoint(ckpt, tmp_path / "init")
    build_cache(tmp_path / "corpus", tmp_path / "cache", ckpt.codec, ckpt.rhythm_settings,
                SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0), CacheSettings())
    (tmp_path / "worker.py").write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(free_port()), str(tmp_path / "worker.py"),
           str(tmp_path / "cache"), str(tmp_path / "run"), str(tmp_path / "init"), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2] and [r["step"] for r in ranks] == [3, 3]
    assert ranks[0]["losses"] != ranks[1]["losses"]  # each rank drew its own batches
    assert ranks[0]["weights_digest"] == ranks[1]["weights_digest"]  # gradients were averaged
    assert load_checkpoint(tmp_path / "run" / "latest").source == "train:jump:step3"
