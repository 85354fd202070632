"""DARC model benchmarks: load time, peak memory and generation speed (frames per second).

The device is chosen once: `cuda` when torch sees a GPU, else `cpu`; every row names it.

- `tiny` goes through the real engine from a checkpoint on disk (encode, rhythm, generate, decode).
- `small` (MusicGen-small shape, random weights) is built in memory and times token generation
  only, with guidance on (two rows: full condition and null) and a mix prefix as long as the drums.
  On CPU it is a short case on one thread (on a shared 2-core machine two threads measured 6-14x
  slower: OpenMP workers spinning against other processes); on cuda a realistic 10 s + 10 s one,
  in bf16 (fp16 where bf16 is missing) like the engine.
- the comparison times our decode path (`darc_bridge.model.generate` over
  `darc_bridge.model.decode`) against audiocraft's own `LMModel.generate` on the same weights and
  inputs, in one process (see `compare_case`); on cuda ours replays CUDA graphs, as the engine does.
- `batch_case`: 4 simultaneous jobs through the engine, one batch against one after another.
- `train_step_case`: a `mini` training step (loss and backward) with the SDPA self-attention of
  the training forward against audiocraft's einsum branch, same weights.
- cuda only: `steps_case` (ms per decode step at 1, 2 and 3 rows, graphs against eager) and
  `engine_small_case` (30 s of drums in 10 s windows, end to end through the engine).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from darc_bridge.bench.common import BenchRow, format_table, run_isolated

TINY_SECONDS = (10.0, 60.0)
BATCH_JOBS, BATCH_SECONDS = 4, 10.0
SMALL_SECONDS = {"cpu": 1.0, "cuda": 10.0}
# (preset, seconds of drums after as long a prefix, timed pairs): several interleaved pairs, so one
# burst of load on a shared machine moves one pair's ratio, not the reported median
COMPARE = {"cpu": [("tiny", 10.0, 7), ("small", 1.0, 3)], "cuda": [("tiny", 10.0, 5), ("small", 10.0, 3)]}
NULL_ATTRIBUTE = "darc_null_text"  # the stand-in condition audiocraft's generate is given (see compare_case)


def bench_device() -> str:
    """`cuda` when a GPU is visible to torch, else `cpu`."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def _prepare(device: str) -> torch.dtype:
    """One CPU thread (see the module docstring); bf16 (or fp16) on cuda, as the engine runs it."""
    from darc_bridge.model.decode import decode_dtype

    if device == "cpu":
        torch.set_num_threads(1)
        return torch.float32
    torch.cuda.reset_peak_memory_stats()
    return decode_dtype(device)


class _CountingSteps:
    """Wraps a step source and records the batch rows of every session (the guidance rows run)."""

    def __init__(self, inner) -> None:
        self.inner, self.rows = inner, set()

    def session(self, rows: int, steps: int, groups: tuple[int, ...] | None = None):
        self.rows.add(rows)
        return self.inner.session(rows, steps, groups)


def _steps_for(model, device: str, max_steps: int):
    """The engine's step source: CUDA graphs for 1-3 rows on cuda, eager sessions on the CPU."""
    from darc_bridge.model.decode import CudaGraphSteps, Decoder, EagerSteps

    decoder = Decoder(model)
    if device.startswith("cuda"):
        return CudaGraphSteps(decoder, max_steps)
    return EagerSteps(decoder)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _gpu_peak(device: str) -> dict:
    if not device.startswith("cuda"):
        return {}
    return {"gpu_peak_mb": torch.cuda.max_memory_allocated() / 2**20}


def tiny_case(seconds: float, device: str = "cpu") -> dict:
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
        engine = create_engine("darc", checkpoint=str(path), device=device)
        engine.load()
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        result = engine.generate(mix, prompt, GenerationParams(seed=0))
        gen_s = time.perf_counter() - t1
    frames = result.info["frames"]
    return {"seconds": gen_s, "load_s": load_s, "frames": frames, "fps": frames / gen_s,
            "x_realtime": seconds / gen_s, "windows": result.info["windows"], **_gpu_peak(device)}


def _random_inputs(n_q: int, card: int, classes: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, card, (n_q, frames), generator=g), torch.rand(classes, frames, generator=g)


def small_case(seconds: float, device: str = "cpu") -> dict:
    """Random-weight `small`: load time, then token generation of `seconds` after an equal mix prefix."""
    from darc_bridge.model.checkpoint import random_checkpoint
    from darc_bridge.model.generate import SamplingSettings, generate_drums

    dtype = _prepare(device)
    t0 = time.perf_counter()
    ckpt = random_checkpoint("small")
    ckpt.model.to(device=device, dtype=dtype)
    _sync(device)
    load_s = time.perf_counter() - t0
    cfg = ckpt.config
    n = int(round(seconds * cfg.frame_rate))
    mix, rhythm = _random_inputs(cfg.n_q, cfg.card, cfg.rhythm_classes, n)
    steps = _steps_for(ckpt.model, device, 2 * n + 1 + cfg.n_q)
    t1 = time.perf_counter()
    _, info = generate_drums(ckpt.model, mix, rhythm, SamplingSettings(seed=0), steps=steps)
    _sync(device)
    gen_s = time.perf_counter() - t1
    params = sum(p.numel() for p in ckpt.model.parameters())
    codec_params = sum(p.numel() for p in ckpt.codec.parameters())
    return {"seconds": gen_s, "load_s": load_s, "params_M": params / 1e6, "codec_M": codec_params / 1e6,
            "frames": n, "fps": n / gen_s, "s_per_step": gen_s / info["steps"],
            "threads": torch.get_num_threads(), **_gpu_peak(device)}


class _NullTextProvider(nn.Module):
    """Stands in for audiocraft's (empty) condition provider: every condition, real or dropped, is
    one zero vector, fused by cross-attention (the input DarcLM gives MusicGen's idle text
    cross-attention) or, for a model without it, summed into the input (adding zero)."""

    def __init__(self, dim: int, device: torch.device, dtype: torch.dtype) -> None:
        super().__init__()
        self.dim, self.device, self.dtype = dim, device, dtype

    def tokenize(self, conditions: list) -> dict:
        return {"n": len(conditions)}

    def forward(self, tokenized: dict) -> dict:
        n = tokenized["n"]
        zeros = torch.zeros(n, 1, self.dim, device=self.device, dtype=self.dtype)
        return {NULL_ATTRIBUTE: (zeros, torch.ones(n, 1, device=self.device))}


@contextmanager
def _null_condition(lm: nn.Module, cross_attention: bool) -> Iterator[list]:
    """Give audiocraft's LM a null condition for the duration, so its generate runs classifier-free
    guidance (without a condition it skips CFG; `small` would also trip over its cross-attention)."""
    from audiocraft.modules.conditioners import ConditioningAttributes

    param = next(lm.parameters())
    saved = lm.condition_provider
    lm.condition_provider = _NullTextProvider(lm.dim, param.device, param.dtype)
    lm.fuser.cond2fuse[NULL_ATTRIBUTE] = "cross" if cross_attention else "sum"
    try:
        yield [ConditioningAttributes()]
    finally:
        lm.condition_provider = saved
        del lm.fuser.cond2fuse[NULL_ATTRIBUTE]


@contextmanager
def _batch_sizes(transformer: nn.Module) -> Iterator[set[int]]:
    """The batch sizes the transformer sees meanwhile: the guidance rows each side really runs."""
    seen: set[int] = set()
    handle = transformer.register_forward_pre_hook(lambda _m, args: seen.add(int(args[0].shape[0])))
    try:
        yield seen
    finally:
        handle.remove()


def compare_case(preset_name: str, seconds: float, device: str = "cpu", repeats: int = 5) -> dict:
    """Our generation loop against audiocraft's `LMModel.generate`, same weights, same run.

    Identical on both sides: the LM weights (DarcLM wraps the very `LMModel` audiocraft's generate
    runs), `seconds` of mix tokens as the prefix, the same number of generated frames and pattern
    steps, classifier-free guidance with the preset's coefficient over two batch rows, temperature
    1.0 and the preset's top-k, the device, dtype and thread count.

    Not identical, because audiocraft's generate cannot take DARC's layout: (1) the delimiter
    frame: ours embeds token `card + 1` through `DarcLM.delimiter`, audiocraft's embedding tables
    stop at `card`, so its prompt ends with a frame of `card` (pad) tokens instead; (2) the
    guidance rows: ours pairs "mix context" with "pad context" (the null row replaces the mix by
    pads), audiocraft pairs the prompt under a condition with the same prompt under the dropped
    condition (here both a zero vector, see `_null_condition`), so its guidance changes no logit;
    (3) the main timing uses no rhythm prompt (audiocraft has no in-attention); `ours_rhythm_fps`
    adds DARC's rhythm (full + null rows, the in-attention additions) for reference. The sampled
    tokens differ (different RNG streams), the work per step does not.

    Each side is warmed up once (a short run on the same kind of input; it also records the batch
    rows each side runs, `ours_rows` / `audiocraft_rows`), then timed in `repeats` interleaved
    pairs (ours first in even pairs, audiocraft first in odd ones, so a drift in the machine's
    load favours neither). Each pair gives a ratio, audiocraft's time over ours (> 1: ours is
    faster); `ratio` is their median, `ratio_min` / `ratio_max` the extremes, and the fps and
    s/step figures come from the median times. On the CPU `cpu_ratio` is the median ratio of
    the main thread's CPU time (both sides run on that one thread), which time slices lost to
    other processes do not inflate.
    """
    from darc_bridge.compat import import_audiocraft
    from darc_bridge.model.checkpoint import random_checkpoint
    from darc_bridge.model.generate import SamplingSettings, generate_drums

    import_audiocraft()
    dtype = _prepare(device)
    ckpt = random_checkpoint(preset_name)
    model = ckpt.model.to(device=device, dtype=dtype)
    lm, cfg = model.lm, ckpt.config
    n = int(round(seconds * cfg.frame_rate))
    if n > int(round(cfg.window_s * cfg.frame_rate)):
        raise ValueError(f"{seconds} s is longer than one {preset_name} window ({cfg.window_s} s): ours would "
                         "split it into windows, audiocraft's generate would not")
    mix, rhythm = _random_inputs(cfg.n_q, cfg.card, cfg.rhythm_classes, n)
    settings = SamplingSettings(temperature=1.0, top_k=cfg.top_k, cfg_coef=cfg.cfg_coef, seed=0)

    steps = _CountingSteps(_steps_for(model, device, 2 * n + 1 + cfg.n_q))

    def timed(run) -> tuple[float, float, int]:
        """(wall seconds, this thread's CPU seconds, frames made) of one run."""
        t0, c0 = time.perf_counter(), time.thread_time()
        frames = run()
        _sync(device)
        return time.perf_counter() - t0, time.thread_time() - c0, frames

    def ours(frames: int, with_rhythm: bool = False) -> int:
        drums, _ = generate_drums(model, mix[:, :frames], rhythm[:, :frames] if with_rhythm else None, settings,
                                  steps=steps)
        return drums.shape[-1]

    def theirs(frames: int, conditions: list) -> int:
        pad = torch.full((cfg.n_q, 1), model.pad, dtype=torch.long)
        prompt = torch.cat([mix[:, :frames], pad], dim=-1)[None].to(device)
        torch.manual_seed(0)
        out = lm.generate(prompt, conditions, max_gen_len=prompt.shape[-1] + frames, use_sampling=True,
                          temp=settings.temperature, top_k=settings.top_k, top_p=0.0,
                          cfg_coef=settings.cfg_coef, two_step_cfg=False, remove_prompts=True)
        return out.shape[-1]

    warm = min(n, 25)
    with torch.no_grad(), _null_condition(lm, cfg.cross_attention) as conditions:
        ours(warm)
        rows_ours = set(steps.rows)
        with _batch_sizes(lm.transformer) as rows_theirs:
            theirs(warm, conditions)
        runs_ours, runs_theirs, runs_rhythm = [], [], []
        for r in range(repeats):
            if r % 2 == 0:
                runs_ours.append(timed(lambda: ours(n)))
                runs_theirs.append(timed(lambda: theirs(n, conditions)))
            else:
                runs_theirs.append(timed(lambda: theirs(n, conditions)))
                runs_ours.append(timed(lambda: ours(n)))
            runs_rhythm.append(timed(lambda: ours(n, with_rhythm=True)))
    median = statistics.median
    ratios = [t[0] / o[0] for o, t in zip(runs_ours, runs_theirs, strict=True)]
    wall = {name: median(r[0] for r in runs) for name, runs in
            (("ours", runs_ours), ("theirs", runs_theirs), ("rhythm", runs_rhythm))}
    steps = n + cfg.n_q - 1
    out = {"seconds": wall["ours"], "frames": n, "steps": steps, "repeats": repeats,
           "ratio": median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios)}
    if device == "cpu":
        out["cpu_ratio"] = median(t[1] / o[1] for o, t in zip(runs_ours, runs_theirs, strict=True))
    out.update({"ours_fps": n / wall["ours"], "audiocraft_fps": n / wall["theirs"],
                "ours_rhythm_fps": n / wall["rhythm"], "ours_s_per_step": wall["ours"] / steps,
                "audiocraft_s_per_step": wall["theirs"] / steps,
                "ours_frames": runs_ours[0][2], "audiocraft_frames": runs_theirs[0][2],
                "ours_rows": max(rows_ours), "audiocraft_rows": max(rows_theirs),
                "threads": torch.get_num_threads(), **_gpu_peak(device)})
    return out


def train_step_case(preset_name: str = "mini", frames: int = 400, device: str = "cpu", repeats: int = 5,
                    batch: int = 3) -> dict:
    """One training step (teacher-forced loss, backward) on `batch` rows of `frames` mix frames and
    as many drum frames: ours (`DarcLM.loss`, whose layers run their self-attention through SDPA,
    model/lm.py `_layer`) against the same layers called as audiocraft builds them (its einsum
    branch with an explicit causal mask: what the loop ran before), same weights, interleaved pairs.
    `ratio`: the median of einsum time over ours (> 1: ours is faster); `loss_gap` the two losses'
    difference (the same computation: float error only)."""
    from darc_bridge.model import lm as lm_module
    from darc_bridge.model.checkpoint import random_checkpoint

    dtype = _prepare(device)
    ckpt = random_checkpoint(preset_name)
    model = ckpt.model.to(device=device, dtype=dtype).train()
    cfg = ckpt.config
    g = torch.Generator().manual_seed(0)
    mix, drums = (torch.randint(0, cfg.card, (batch, cfg.n_q, frames), generator=g).to(device) for _ in range(2))
    rhythm = torch.rand(batch, cfg.rhythm_classes, frames, generator=g).to(device=device, dtype=dtype)
    ours_layer = lm_module._layer

    def as_built(layer, x, piece, src):
        return layer(x if piece is None else x + piece.to(x.dtype), cross_attention_src=src)

    def step(layer_fn) -> tuple[float, float]:
        lm_module._layer = layer_fn
        try:
            model.zero_grad(set_to_none=True)
            t0 = time.perf_counter()
            loss = model.loss(mix, drums, rhythm)
            loss.backward()
            _sync(device)
            return time.perf_counter() - t0, float(loss.detach())
        finally:
            lm_module._layer = ours_layer

    step(ours_layer), step(as_built)  # warm-up
    ours, theirs = [], []
    for r in range(repeats):
        pair = (ours_layer, as_built) if r % 2 == 0 else (as_built, ours_layer)
        for fn in pair:
            (ours if fn is ours_layer else theirs).append(step(fn))
    ratios = [t[0] / o[0] for o, t in zip(ours, theirs, strict=True)]
    median = statistics.median
    return {"seconds": median(o[0] for o in ours), "einsum_seconds": median(t[0] for t in theirs),
            "ratio": median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "loss_gap": abs(ours[0][1] - theirs[0][1]), "rows": batch, "steps": 2 * frames + 1 + cfg.n_q - 1,
            "repeats": repeats, "threads": torch.get_num_threads(), **_gpu_peak(device)}


def batch_case(jobs: int = BATCH_JOBS, seconds: float = BATCH_SECONDS, device: str = "cpu") -> dict:
    """`jobs` simultaneous `seconds`-long jobs on `tiny` through the engine: decoded as rows of one
    batch (`generate_batch`), as concurrent `generate` calls from one thread each (what the daemon's
    batching worker does; the engine merges them), and one after another; best of two runs each."""
    import threading

    import numpy as np

    from darc_bridge.audio import Audio
    from darc_bridge.engines import GenerationParams, create_engine
    from darc_bridge.engines.darc import BatchJob
    from darc_bridge.model.checkpoint import init_checkpoint

    _prepare(device)
    sr = 32000
    t = np.arange(int(seconds * sr)) / sr
    mixes = [Audio((0.3 * np.sin(2 * np.pi * (110 + 30 * i) * t))[None].astype(np.float32), sr) for i in range(jobs)]
    params = [GenerationParams(seed=i) for i in range(jobs)]
    with tempfile.TemporaryDirectory() as tmp:
        init_checkpoint("tiny", Path(tmp) / "tiny")
        engine = create_engine("darc", checkpoint=str(Path(tmp) / "tiny"), device=device)
        engine.load()
        seq, bat, thr = [], [], []

        def threaded() -> list:
            out: list = [None] * jobs

            def run(i: int) -> None:
                out[i] = engine.generate(mixes[i], None, params[i])

            threads = [threading.Thread(target=run, args=(i,)) for i in range(jobs)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            return out

        for _ in range(2):
            t0 = time.perf_counter()
            one = [engine.generate(m, None, p) for m, p in zip(mixes, params, strict=True)]
            seq.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            many = engine.generate_batch([BatchJob(m, None, p) for m, p in zip(mixes, params, strict=True)])
            bat.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            together = threaded()
            thr.append(time.perf_counter() - t0)
    same = sum(np.array_equal(a.stem, b.stem) for a, b in zip(one, many, strict=True))
    same_threads = sum(np.array_equal(a.stem, b.stem) for a, b in zip(one, together, strict=True))
    return {"seconds": min(bat), "sequential_s": min(seq), "speedup": min(seq) / min(bat),
            "threads_s": min(thr), "threads_speedup": min(seq) / min(thr), "threads_same": same_threads,
            "jobs": jobs, "job_s": seconds, "same_as_alone": same, **_gpu_peak(device)}


def steps_case(preset_name: str = "small", device: str = "cuda", repeats: int = 200) -> dict:
    """cuda only: ms per decode step at 1, 2 and 3 rows, CUDA graph replay against eager steps,
    at the middle of a full window's cache."""
    from darc_bridge.model.checkpoint import random_checkpoint
    from darc_bridge.model.decode import CudaGraphSteps, Decoder

    dtype = _prepare(device)
    ckpt = random_checkpoint(preset_name)
    model = ckpt.model.to(device=device, dtype=dtype)
    cfg = ckpt.config
    n_steps = 2 * int(round(cfg.window_s * cfg.frame_rate)) + 1 + cfg.n_q
    decoder = Decoder(model)
    graphs = CudaGraphSteps(decoder, n_steps)
    out: dict = {"window_steps": n_steps}
    for rows in (1, 2, 3):
        tokens = torch.zeros(rows, cfg.n_q, 1, dtype=torch.long, device=device)
        rhythm = torch.zeros(rows, 1, cfg.dim, dtype=dtype, device=device)
        position = torch.full((1,), n_steps // 2, dtype=torch.long, device=device)
        for name, ctx in (("graph", graphs.session(rows, n_steps)), ("eager", _eager(decoder, rows, n_steps))):
            with ctx as session:
                for _ in range(10):
                    session.decode_step(tokens, position, rhythm, attend=n_steps // 2 + 1)
                _sync(device)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    session.decode_step(tokens, position, rhythm, attend=n_steps // 2 + 1)
                _sync(device)
                out[f"{name}_ms_{rows}rows"] = (time.perf_counter() - t0) / repeats * 1000
    out["seconds"] = out["graph_ms_2rows"] / 1000
    return {**out, **_gpu_peak(device)}


@contextmanager
def _eager(decoder, rows: int, steps: int):
    yield decoder.session(rows, steps)


def engine_small_case(seconds: float = 30.0, window_s: float = 10.0, device: str = "cuda") -> dict:
    """cuda only: `seconds` of drums with `small` (random weights) end to end through the engine,
    in `window_s` windows (each with its own mix span as the prefix), rhythm prompt, CFG."""
    import numpy as np

    from darc_bridge.audio import Audio
    from darc_bridge.engines import GenerationParams, create_engine
    from darc_bridge.model.checkpoint import init_checkpoint

    _prepare(device)
    sr = 32000
    t = np.arange(int(seconds * sr)) / sr
    mix = Audio((0.3 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), sr)
    clicks = np.zeros(int(seconds * sr), dtype=np.float32)
    for start in np.arange(0.0, seconds - 0.1, 0.25):
        i = int(start * sr)
        clicks[i:i + 800] = np.exp(-np.arange(800) / 120.0)
    with tempfile.TemporaryDirectory() as tmp:
        init_checkpoint("small", Path(tmp) / "small")
        t0 = time.perf_counter()
        engine = create_engine("darc", checkpoint=str(Path(tmp) / "small"), device=device)
        engine.load()
        load_s = time.perf_counter() - t0
        params = GenerationParams(seed=0, extra={"window_s": window_s, "overlap_s": min(5.0, window_s / 2)})
        engine.generate(mix, Audio(clicks[None], sr), params)  # first job: lazy kernels
        t1 = time.perf_counter()
        result = engine.generate(mix, Audio(clicks[None], sr), params)
        gen_s = time.perf_counter() - t1
    return {"seconds": gen_s, "load_s": load_s, "steps": result.info["steps"], "windows": result.info["windows"],
            "x_realtime": seconds / gen_s, **_gpu_peak(device)}


@dataclass(frozen=True)
class CaseSpec:
    """One row of the model section: its label, the function run in a fresh process, its arguments."""

    label: str
    target: str
    args: tuple
    timeout: float = 1800

    def run(self) -> BenchRow:
        return run_isolated("model", self.label, f"darc_bridge.bench.model:{self.target}", *self.args,
                            timeout=self.timeout)


def case_specs(device: str, quick: bool = False) -> list[CaseSpec]:
    """The model section's cases on `device`. On cuda the GPU targets come first (ms per step, the
    ratio to stock on `small`, 30 s through the engine), so a run cut short by its time limit
    still has them. `quick`: a dry run of the same code paths at toy sizes (for checking the
    GPU check script on a CPU machine)."""
    if quick:
        specs = [CaseSpec(f"tiny generate 2s ({device})", "tiny_case", (2.0, device)),
                 CaseSpec(f"tiny ours vs audiocraft 0.5s ({device})", "compare_case", ("tiny", 0.5, device, 2)),
                 CaseSpec(f"tiny 2x0.5s batch vs seq ({device})", "batch_case", (2, 0.5, device))]
        specs.append(CaseSpec(f"tiny train step 3x50+50 sdpa vs einsum ({device})", "train_step_case",
                              ("tiny", 50, device, 2)))
        if device.startswith("cuda"):
            specs.append(CaseSpec("tiny ms/step 1-3 rows (cuda)", "steps_case", ("tiny", device, 50)))
        return specs
    small_s = SMALL_SECONDS[device]
    specs = [CaseSpec(f"tiny generate {s:.0f}s ({device})", "tiny_case", (s, device), 900) for s in TINY_SECONDS]
    specs.append(CaseSpec(f"small generate {small_s:.0f}s+{small_s:.0f}s ({device})", "small_case",
                          (small_s, device)))
    specs += [CaseSpec(f"{name} ours vs audiocraft {seconds:.0f}s ({device})", "compare_case",
                       (name, seconds, device, repeats)) for name, seconds, repeats in COMPARE[device]]
    specs.append(CaseSpec(f"tiny {BATCH_JOBS}x{BATCH_SECONDS:.0f}s batch vs seq ({device})", "batch_case",
                          (BATCH_JOBS, BATCH_SECONDS, device)))
    specs.append(CaseSpec(f"mini train step 3x8s+8s sdpa vs einsum ({device})", "train_step_case",
                          ("mini", 400, device)))
    if device.startswith("cuda"):
        first = [CaseSpec("small ms/step 1-3 rows (cuda)", "steps_case", ("small", device), 900),
                 next(c for c in specs if c.label.startswith("small ours vs audiocraft")),
                 CaseSpec("small engine 30s in 10s windows (cuda)", "engine_small_case", (30.0, 10.0, device))]
        specs = first + [c for c in specs if c not in first]
    return specs


def cases() -> list[BenchRow]:
    return [spec.run() for spec in case_specs(bench_device())]


def main(argv: list[str] | None = None) -> int:
    """`python -m darc_bridge.bench.model`: the model section alone, each row appended to `--out`
    as soon as it is measured (a run stopped by a time limit keeps what it had), then the table.
    Exit status 1 when a case failed, 3 when `--expect-cuda` is given and torch sees no GPU."""
    import argparse
    import platform

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, help="file for the table (rows appended as they finish)")
    parser.add_argument("--quick", action="store_true", help="toy sizes: a dry run of the code paths")
    parser.add_argument("--expect-cuda", action="store_true", help="fail unless torch sees a CUDA GPU")
    args = parser.parse_args(argv)
    device = bench_device()
    if args.expect_cuda and device != "cuda":
        print(f"error: --expect-cuda, but torch {torch.__version__} (cuda {torch.version.cuda}) sees no GPU")
        return 3
    head = (f"darc-bridge model benchmarks, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{platform.node()}, torch {torch.__version__}, device {device}"
            + (f" ({torch.cuda.get_device_name(0)})" if device == "cuda" else "")
            + (", quick" if args.quick else ""))
    rows: list[BenchRow] = []

    def save() -> None:
        if args.out is not None:  # a temporary name, then renamed: never a half-written table
            tmp = args.out.with_name(args.out.name + ".tmp")
            tmp.write_text(head + "\n" + (format_table(rows) + "\n" if rows else ""))
            tmp.replace(args.out)

    save()
    for spec in case_specs(device, args.quick):
        rows.append(spec.run())
        save()
    print(head)
    print(format_table(rows))
    return 1 if any("error" in r.extra for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
