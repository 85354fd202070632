"""Batched jobs in the daemon: DARC jobs queued at the same moment run together and their token
generation is decoded as rows of one batch; each job still gets its own seed and stem."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import soundfile as sf
from server_support import write_mix, write_prompt

from darc_bridge.audio import load_audio
from darc_bridge.client import DarcClient
from darc_bridge.engines import GenerationParams, create_engine
from darc_bridge.model.checkpoint import init_checkpoint
from darc_bridge.server.app import DarcServer
from darc_bridge.server.config import ServerConfig

pytestmark = pytest.mark.slow


def test_simultaneous_darc_jobs_decode_as_one_batch(tmp_path, monkeypatch, torch_one_thread):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    init_checkpoint("tiny", tmp_path / "tiny", seed=0)
    engine = create_engine("darc", checkpoint=str(tmp_path / "tiny"), device="cpu")
    assert engine.max_concurrent_jobs > 1
    mixes = [write_mix(tmp_path / f"mix{i}.wav", seconds=0.5, seed=i) for i in range(3)]
    prompt = write_prompt(tmp_path / "prompt.wav", seconds=0.5)
    cfg = ServerConfig(port=0, output_dir=tmp_path / "stems", state_dir=tmp_path / "state", warmup=False)
    server = DarcServer(cfg, engine)
    _, port = server.start()
    try:
        deadline = time.monotonic() + 60
        while not server.loaded and time.monotonic() < deadline:
            time.sleep(0.05)
        finals: dict[int, dict] = {}

        def wait(i: int) -> None:
            with DarcClient("127.0.0.1", port, timeout=120) as c:
                finals[i] = c.wait(f"b{i}")

        with DarcClient("127.0.0.1", port) as c:
            for i, mix in enumerate(mixes):  # queued at the same moment
                c.generate(f"b{i}", str(mix), str(prompt), {"seed": 10 + i, "midi": 0})
        waiters = [threading.Thread(target=wait, args=(i,)) for i in range(3)]
        for t in waiters:
            t.start()
        for t in waiters:
            t.join(timeout=300)
    finally:
        server.stop()
    assert all(finals[i]["state"] == "done" for i in range(3)), finals
    assert max(engine._coalescer.batches) >= 2  # rows of one decode batch, not one job after another
    for i in (0, 2):  # each job its own seed: the stem it makes alone
        batched, _ = sf.read(finals[i]["stem_path"], always_2d=True, dtype="float32")
        alone = engine.generate(load_audio(mixes[i], role="mix", allow_silent=True),
                                load_audio(prompt, role="prompt"), GenerationParams(seed=10 + i)).stem
        np.testing.assert_allclose(batched.T, alone, atol=1e-6)
