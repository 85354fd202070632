"""DARC model benchmarks: load time, peak memory and generation speed (frames per second).

`tiny` goes through the real engine from a checkpoint on disk (encode, rhythm, generate, decode);
`small` (MusicGen-small shape, random weights) is built in memory and times token generation only,
with guidance on (two rows: full condition and null), a mix prefix as long as the drums. It runs on
one CPU thread: on a shared 2-core machine two threads measured 6-14x slower (OpenMP workers
spinning against other processes), which made the figure meaningless.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from darc_bridge.bench.common import BenchRow, run_isolated

TINY_SECONDS = (10.0, 60.0)
SMALL_SECONDS = 1.0


def tiny_case(seconds: float) -> dict:
    """Checkpoint load (build + weights + warm-up) and end-to-end generation of `seconds` of drums."""
    import numpy as np

    from darc_bridge.audio import Audio
    from darc_bridge.engines import GenerationParams, create_engine
    from darc_bridge.model.checkpoint import init_checkpoint

    sr = 44100
    t = np.arange(int(seconds * sr)) / sr
    mix = Audio((0.3 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), sr)
    clicks = np.zeros(int(2 * sr), dtype=np.float32)
    for start in np.arange(0.0, 1.9, 0.25):
        i = int(start * sr)
        clicks[i:i + 800] = np.exp(-np.arange(800) / 120.0)
    prompt = Audio(clicks[None], sr)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny"
        init_checkpoint("tiny", path)
        t0 = time.perf_counter()
        engine = create_engine("darc", checkpoint=str(path), device="cpu")
        engine.load()
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = engine.generate(mix, prompt, GenerationParams(seed=0))
        gen_s = time.perf_counter() - t1
    frames = result.info["frames"]
    return {"seconds": gen_s, "load_s": load_s, "frames": frames, "fps": frames / gen_s,
            "x_realtime": seconds / gen_s, "windows": result.info["windows"]}


def small_case(seconds: float) -> dict:
    """Random-weight `small`: build time, then token generation of `seconds` after an equal mix prefix."""
    import torch

    from darc_bridge.model.checkpoint import random_checkpoint
    from darc_bridge.model.generate import SamplingSettings, generate_drums

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    ckpt = random_checkpoint("small")
    build_s = time.perf_counter() - t0
    n = int(round(seconds * ckpt.config.frame_rate))
    g = torch.Generator().manual_seed(0)
    mix = torch.randint(0, ckpt.config.card, (ckpt.config.n_q, n), generator=g)
    rhythm = torch.rand(ckpt.config.rhythm_classes, n, generator=g)
    t1 = time.perf_counter()
    _, info = generate_drums(ckpt.model, mix, rhythm, SamplingSettings(seed=0))
    gen_s = time.perf_counter() - t1
    params = sum(p.numel() for p in ckpt.model.parameters())
    codec_params = sum(p.numel() for p in ckpt.codec.parameters())
    return {"seconds": gen_s, "build_s": build_s, "params_M": params / 1e6, "codec_M": codec_params / 1e6,
            "frames": n, "fps": n / gen_s,
            "s_per_step": gen_s / info["steps"], "threads": torch.get_num_threads()}


def cases() -> list[BenchRow]:
    rows = [run_isolated("model", f"tiny generate {s:.0f}s (cpu)", "darc_bridge.bench.model:tiny_case", s)
            for s in TINY_SECONDS]
    rows.append(run_isolated("model", f"small generate {SMALL_SECONDS:.0f}s (cpu)",
                             "darc_bridge.bench.model:small_case", SMALL_SECONDS, timeout=1800))
    return rows
