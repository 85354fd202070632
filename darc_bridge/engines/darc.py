"""DarcEngine: the DARC model behind the Engine interface (CLI `--engine darc` and the daemon).

Loads a checkpoint once and stays resident (GPU in bf16, fp16 where bf16 is missing, with one CUDA
graph of a decode step per guidance row count captured at warm-up; CPU float32 otherwise), then
per job: beat grid (if the model uses it), rhythm features of the prompt, EnCodec tokens of the
mix, windowed generation, decoding, and length/rate/channel matching to the region.

Jobs may run concurrently: the model holds no per-job state (the rhythm is an argument of the
decode step, each window has its own cache). What is shared is locked where it is used: a CUDA
graph's static buffers (one job at a time per graph; others decode eagerly) and the process-wide
CPU thread count. `generate_batch` decodes several jobs as rows of one batch, and concurrent
`generate` calls (a daemon running the jobs queued at the same moment) are merged the same way:
the token generation of calls that overlap runs as one batch (`_Coalescer`).
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from darc_bridge.audio import Audio
from darc_bridge.engines.base import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)
from darc_bridge.engines.options import MODEL_OPTIONS, WINDOW_OPTIONS
from darc_bridge.errors import CheckpointError, InputError

log = logging.getLogger(__name__)

PEAK_LIMIT = 0.99  # never return clipped audio: louder stems are scaled down to this peak
GATHER_S = 2.0  # longest a prepared job waits for concurrent jobs still preparing (beats, rhythm, encoding)
SMALL_MODEL_DIM = 512  # below this width, one CPU thread is faster than several (no contention)


def resolve_device(request: str) -> str:
    """'auto' -> cuda when available, else cpu; an explicit device that is missing is an error."""
    req = (request or "auto").lower()
    if req == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if req.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {request!r} requested but no CUDA GPU is available (use --device cpu)")
    if req != "cpu" and not req.startswith("cuda"):
        raise InputError(f"unknown device {request!r}; use auto, cpu or cuda")
    return req


class _ThreadPin:
    """Pins torch's (process-wide) CPU thread count while any job needs it, restoring it after the
    last one: concurrent jobs must not restore it under each other's feet."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._before = 0

    @contextlib.contextmanager
    def __call__(self, n: int | None):
        if n is None:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._before = torch.get_num_threads()
                torch.set_num_threads(n)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0:
                    torch.set_num_threads(self._before)


_cpu_threads = _ThreadPin()


def _extra(params: GenerationParams, defaults: dict[str, Any]) -> dict[str, Any]:
    """Validated engine options from params.extra (unknown keys are ignored: other engines' options)."""
    e = {**defaults, **{k: v for k, v in params.extra.items() if k in defaults and v is not None}}
    for key, spec in {**MODEL_OPTIONS, **WINDOW_OPTIONS}.items():  # one table of ranges (engines/options.py)
        e[key] = spec.check(key, e[key])
    if e["overlap_s"] >= e["window_s"]:
        raise InputError(f"overlap_s ({e['overlap_s']}) must be shorter than window_s ({e['window_s']})")
    e["top_k"] = int(e["top_k"])
    return e


def _fit(samples: np.ndarray, n: int, channels: int) -> np.ndarray:
    """Exactly `n` frames (pad with silence or trim) and `channels` channels (mono is copied)."""
    out = samples[:, :n]
    if out.shape[1] < n:
        out = np.pad(out, ((0, 0), (0, n - out.shape[1])))
    if out.shape[0] != channels:
        out = np.repeat(out.mean(axis=0, keepdims=True), channels, axis=0)
    return np.ascontiguousarray(out, dtype=np.float32)


@dataclass
class BatchJob:
    """One job of `DarcEngine.generate_batch`, with its own progress and cancel (and seed in params)."""

    mix: Audio
    prompt: Audio | None
    params: GenerationParams
    progress: ProgressCallback = no_progress
    cancel: CancelToken | None = None


@dataclass
class _Prepared:
    mix: Audio
    params: GenerationParams
    progress: ProgressCallback
    cancel: CancelToken | None
    codes: torch.Tensor
    rhythm: torch.Tensor | None
    beat: torch.Tensor | None
    settings: Any
    opts: dict[str, Any]
    rhythm_features: Any
    beat_grid: Any
    t0: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Slot:
    job: Any
    result: Any = None
    done: bool = False


class _Coalescer:
    """Merges the token generation of concurrent `generate` calls into one batch.

    A call counts as preparing from its entry until its tokens are wanted. A prepared call waits
    while other calls are still preparing (at most `gather_s`) or a batch is running, then the
    first free waiter runs every waiting job as one batch and hands each caller its own result.
    A call alone never waits.
    """

    def __init__(self, run_batch: Callable[[list], list], gather_s: float = GATHER_S) -> None:
        self._run_batch = run_batch
        self._gather_s = gather_s
        self._cond = threading.Condition()
        self._waiting: list[_Slot] = []
        self._preparing = 0
        self._busy = False
        self.batches: list[int] = []  # sizes of the batches run (for tests and logs)

    @contextlib.contextmanager
    def preparing(self):
        with self._cond:
            self._preparing += 1
        try:
            yield
        finally:
            with self._cond:
                self._preparing -= 1
                self._cond.notify_all()

    def decode(self, job: Any) -> Any:
        """Run `job` (alone or with concurrent ones); call inside `preparing()`."""
        slot = _Slot(job)
        with self._cond:
            self._preparing -= 1  # this call's preparation is over
            self._waiting.append(slot)
            self._cond.notify_all()
            deadline = time.monotonic() + self._gather_s
            while not slot.done:
                left = deadline - time.monotonic()
                if not self._busy and (self._preparing == 0 or left <= 0):
                    take, self._waiting, self._busy = self._waiting, [], True
                    break
                self._cond.wait(timeout=max(left, 0.01) if not self._busy else None)
            else:
                self._preparing += 1  # balanced by preparing()'s exit
                return slot.result
            self._preparing += 1
        try:
            results = self._run_batch([s.job for s in take])
        except BaseException as exc:  # noqa: B036 - every caller of the batch gets the failure
            results = [exc] * len(take)
        with self._cond:
            for s, r in zip(take, results, strict=True):
                s.result, s.done = r, True
            self.batches.append(len(take))
            self._busy = False
            self._cond.notify_all()
        return slot.result


class DarcEngine(Engine):
    """Neural drums from a DARC checkpoint (see docs/model.md)."""

    name = "darc"
    max_concurrent_jobs = 4  # jobs queued together decode as rows of one batch (_Coalescer)
    rhythm_without_prompt = False  # without a prompt the model follows no rhythm: no MIDI to write

    def __init__(self, checkpoint: str, device: str = "auto", warmup: bool = True,
                 threads: int | None = None, cuda_graphs: bool = True, compile: bool = False) -> None:
        """`cuda_graphs`: capture one decode step per row count at warm-up (cuda only);
        `compile`: pass the captured step through torch.compile first (cuda only)."""
        if not checkpoint:
            raise InputError("the darc engine needs a checkpoint folder (make one with `darc-bridge model init`)")
        self.checkpoint_path = str(checkpoint)
        self.device_request = device
        self.warmup = warmup
        self.threads = threads
        self.device: str | None = None
        self.cuda_graphs = cuda_graphs
        self.compile = compile
        self._ckpt = None
        self._steps = None  # where decode sessions come from (eager, or CUDA graphs)
        self._lock = threading.Lock()  # loading only: jobs run concurrently (see the module docstring)
        self._coalescer = _Coalescer(self._decode_batch)

    # -- loading -----------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._ckpt is not None:
                return
            from darc_bridge.model.checkpoint import load_checkpoint
            from darc_bridge.model.decode import Decoder, EagerSteps, decode_dtype

            t0 = time.perf_counter()
            device = resolve_device(self.device_request)
            ckpt = load_checkpoint(self.checkpoint_path)
            ckpt.model.to(device=device, dtype=decode_dtype(device))
            ckpt.codec.to(device)
            if self.threads is None and device == "cpu" and ckpt.config.dim < SMALL_MODEL_DIM:
                self.threads = 1
            self.device, self._ckpt = device, ckpt
            self._steps = EagerSteps(Decoder(ckpt.model))
            if self.warmup:
                self._warm_up()
            log.info("darc engine ready: %s on %s in %.1fs", self.checkpoint_path, device, time.perf_counter() - t0)

    def _warm_up(self) -> None:
        """A few real decoding steps and one beat tracking, so the first job does not pay for lazy
        initialisation (the beat grid keeps looped prompts in time with the song)."""
        from darc_bridge.beat.tracking import warm_up as warm_up_beat_tracking
        from darc_bridge.model.generate import SamplingSettings, generate_window

        warm_up_beat_tracking()

        ckpt = self._ckpt
        mix = torch.zeros((ckpt.config.n_q, 4), dtype=torch.long)
        gen = torch.Generator(device=self.device)
        with _cpu_threads(self.threads):
            generate_window(ckpt.model, mix, mix[:, :0], None, None, SamplingSettings(top_k=8), gen,
                            steps=self._steps)
        if self.device.startswith("cuda") and self.cuda_graphs:
            from darc_bridge.model.decode import CudaGraphSteps

            cfg = ckpt.config
            frames = int(round(cfg.window_s * cfg.frame_rate))
            self._steps = CudaGraphSteps(self._steps.decoder, 2 * frames + 1 + cfg.n_q, compile=self.compile)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"engine": self.name, "device": self.device or resolve_device(self.device_request),
                             "loaded": self._ckpt is not None, "checkpoint": self.checkpoint_path}
        if self._ckpt is not None:
            d.update(preset=self._ckpt.config.preset, source=self._ckpt.source,
                     parameters=sum(p.numel() for p in self._ckpt.model.parameters()))
        return d

    @property
    def checkpoint(self):
        """The loaded checkpoint (model, codec, rhythm settings); loads on first use."""
        self.load()
        return self._ckpt

    # -- generation --------------------------------------------------------------------------
    def generate(
        self,
        mix: Audio,
        prompt: Audio | None,
        params: GenerationParams,
        progress: ProgressCallback = no_progress,
        cancel: CancelToken | None = None,
    ) -> GenerationResult:
        from darc_bridge.model.generate import DrumJob

        params.validate()
        ckpt = self.checkpoint
        with self._coalescer.preparing():
            job = self._prepare(ckpt, mix, prompt, params, progress, cancel)
            res = self._coalescer.decode(DrumJob(job.codes, job.rhythm, job.settings, job.beat,
                                                 job.opts["window_frames"], job.opts["overlap_frames"],
                                                 _stage(progress, "generate"), cancel))
        if isinstance(res, BaseException):
            raise res
        return self._finish(ckpt, job, *res)

    def _decode_batch(self, jobs: list) -> list:
        from darc_bridge.model.generate import generate_drums_batch

        if len(jobs) > 1:
            log.info("decoding %d concurrent jobs as one batch", len(jobs))
        with _cpu_threads(self.threads):
            return generate_drums_batch(self.checkpoint.model, jobs, steps=self._steps)

    def generate_batch(self, jobs: list[BatchJob]) -> list[GenerationResult | Exception]:
        """Several jobs at once: each is prepared alone (beats, rhythm, encoding), then all token
        generation runs as rows of one batch (jobs of the same length and window plan step
        together), then each is decoded alone. Each job keeps its own seed, progress and cancel
        (its stem equals the one it gets alone up to float rounding of the larger batch, see
        `generate_drums_batch`); each entry is its result or the error that job alone raised
        (InputError, Cancelled, ...)."""
        from darc_bridge.model.generate import DrumJob

        ckpt = self.checkpoint
        out: list[GenerationResult | Exception | None] = [None] * len(jobs)
        ready: list[tuple[int, _Prepared]] = []
        for i, job in enumerate(jobs):
            try:
                job.params.validate()
                ready.append((i, self._prepare(ckpt, job.mix, job.prompt, job.params, job.progress, job.cancel)))
            except Exception as exc:  # that job's error, reported to it alone
                out[i] = exc
        drum_jobs = [DrumJob(p.codes, p.rhythm, p.settings, p.beat, p.opts["window_frames"],
                             p.opts["overlap_frames"], _stage(p.progress, "generate"), p.cancel) for _, p in ready]
        results = self._decode_batch(drum_jobs)
        for (i, p), res in zip(ready, results, strict=True):
            if isinstance(res, Exception):
                out[i] = res
                continue
            try:
                out[i] = self._finish(ckpt, p, *res)
            except Exception as exc:
                out[i] = exc
        return out  # type: ignore[return-value]

    def _prepare(self, ckpt, mix: Audio, prompt: Audio | None, params: GenerationParams,
                 progress: ProgressCallback, cancel: CancelToken | None) -> _Prepared:
        from darc_bridge.model.codec import encode_audio
        from darc_bridge.model.generate import SamplingSettings

        cfg = ckpt.config
        if mix.samples.ndim != 2 or mix.samples.shape[-1] == 0:
            raise InputError("mix region holds no audio")
        opts = _extra(params, {"top_k": cfg.top_k, "top_p": 0.0, "cfg_coef": cfg.cfg_coef,
                               "window_s": cfg.window_s, "overlap_s": cfg.overlap_s})
        if opts["window_s"] > cfg.window_s:
            raise InputError(f"window_s {opts['window_s']:g} is longer than this model's window ({cfg.window_s:g}s)")
        opts["window_frames"] = int(round(opts["window_s"] * cfg.frame_rate))
        opts["overlap_frames"] = max(1, int(round(opts["overlap_s"] * cfg.frame_rate)))
        seed = params.seed if params.seed is not None else secrets.randbelow(2**31)  # sendable back as an OSC int32
        t0 = time.perf_counter()

        beat_grid, beat = None, None
        # The grid also keeps a looped prompt in time with the song, serves `quantize` and gives the
        # MIDI file of the played rhythm the song's tempo (a DAW that imports it by beats places it
        # right); a fraction of a second against the generation.
        if cfg.beat_conditioning or prompt is not None:
            from darc_bridge.beat.tracking import estimate_beat_grid

            progress("beats", 0.0)
            beat_grid = estimate_beat_grid(mix)
            progress("beats", 1.0)
        rhythm_features = None
        if prompt is not None:
            from darc_bridge.rhythm.nmf import extract_rhythm

            progress("rhythm", 0.0)
            rhythm_features = extract_rhythm(prompt, settings=ckpt.rhythm_settings)
            period = beat_grid.loop_period(rhythm_features.duration) if beat_grid is not None else None
            rhythm_features = rhythm_features.fit_to(mix.duration, loop_period=period)
            if params.quantize > 0 and beat_grid is not None:
                rhythm_features = rhythm_features.quantized(beat_grid.subdivisions(per_beat=4), params.quantize)
            if rhythm_features.n_classes != cfg.rhythm_classes:
                raise CheckpointError(f"rhythm has {rhythm_features.n_classes} classes, the model expects "
                                      f"{cfg.rhythm_classes}")
            progress("rhythm", 1.0)
        if cancel is not None:
            cancel.raise_if_cancelled()

        progress("encode", 0.0)
        with _cpu_threads(self.threads):
            codes = encode_audio(ckpt.codec, mix)
        n = codes.shape[-1]
        rhythm = None if rhythm_features is None else _frames(rhythm_features.activations, n)
        if cfg.beat_conditioning and beat_grid is not None:
            beat = _frames(beat_grid.to_frame_features(cfg.frame_rate, n), n)
        progress("encode", 1.0)
        settings = SamplingSettings(params.temperature, opts["top_k"], float(opts["top_p"]), float(opts["cfg_coef"]),
                                    params.rhythm_strength, seed)
        return _Prepared(mix, params, progress, cancel, codes, rhythm, beat, settings, opts, rhythm_features,
                         beat_grid, t0)

    def _finish(self, ckpt, job: _Prepared, drums: torch.Tensor, info: dict) -> GenerationResult:
        from darc_bridge.model.codec import decode_tokens

        mix, params, progress, opts = job.mix, job.params, job.progress, job.opts
        progress("decode", 0.0)
        with _cpu_threads(self.threads):
            audio = decode_tokens(ckpt.codec, drums)
        out_sr = int(params.output_sample_rate or mix.sample_rate)
        n_out = mix.samples.shape[-1] if out_sr == mix.sample_rate else int(round(mix.duration * out_sr))
        n_codec = int(round(mix.duration * ckpt.codec.sample_rate))
        stem = Audio(_fit(audio, n_codec, audio.shape[0]), int(ckpt.codec.sample_rate)).resampled(out_sr).samples
        stem = np.nan_to_num(_fit(stem, n_out, mix.channels))
        peak = float(np.max(np.abs(stem))) if stem.size else 0.0
        if peak > PEAK_LIMIT:
            log.info("drum stem peaked at %.2f: scaled down to %.2f to avoid clipping", peak, PEAK_LIMIT)
            stem *= PEAK_LIMIT / peak
        progress("decode", 1.0)
        info = dict(info)
        info.update(engine=self.name, seed=int(job.settings.seed), device=self.device,
                    checkpoint=self.checkpoint_path, rhythm_strength=params.rhythm_strength,
                    cfg_coef=float(opts["cfg_coef"]), top_k=opts["top_k"], top_p=float(opts["top_p"]),
                    seconds=round(time.perf_counter() - job.t0, 3))
        return GenerationResult(stem, out_sr, rhythm=job.rhythm_features, beat_grid=job.beat_grid, info=info)


def _stage(progress: ProgressCallback, stage: str) -> Callable[[float], None]:
    return lambda f: progress(stage, f)


def _frames(rows: np.ndarray, n: int) -> torch.Tensor:
    """(C, n) float tensor: features padded with zeros or trimmed to the mix's token frames."""
    out = np.zeros((rows.shape[0], n), dtype=np.float32)
    m = min(n, rows.shape[1])
    out[:, :m] = rows[:, :m]
    return torch.from_numpy(out)
