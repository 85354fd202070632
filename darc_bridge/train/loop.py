"""The fine-tuning loop: AdamW, gradient accumulation, clipping, condition dropout, bf16 autocast
on GPU, periodic checkpoints the engine loads, resume after a kill, DDP under torchrun.

Checkpoints go to OUT/step_NNNNNNN (a normal DARC checkpoint plus train_state.pt holding the
optimizer, step and settings); OUT/latest is a symlink to the newest, switched atomically once the
folder is complete, so a kill at any moment leaves a loadable `latest`. Restarting the same
command resumes from it. Batches are read in the epoch order of train/dataset.py (a function of
seed and position) and cropped and masked with a generator seeded by (seed, step, rank), so a
resumed run sees the batches an uninterrupted one would have.

Beat conditioning: when the model has it (config.beat_conditioning), the cache must hold beat
features and they are fed with every batch; the model gates them with `context_on`, so they drop
out together with the mix context, as the engine's classifier-free guidance rows do at inference.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from darc_bridge.errors import CheckpointError, InputError, OutputError
from darc_bridge.train.dataset import DEFAULT_OPEN_SHARDS, TokenCache

log = logging.getLogger(__name__)

MODES = ("jump", "full", "stage")
SCHEDULES = ("constant", "cosine")
# A random LM learns from scratch: the usual transformer recipe (a higher rate, warm-up over the first
# twentieth of the run, cosine decay to a tenth). Adapted MusicGen weights keep STAGE's 1e-5, constant.
RANDOM_LM_LR = 5e-4
PRETRAINED_LR = 1e-5
STATE_FILE = "train_state.pt"
LATEST = "latest"


@dataclass(frozen=True)
class TrainSettings:
    """Defaults follow STAGE / MusiConGen (REFERENCE sections 3-4) where they say something."""

    steps: int = 1000
    batch_size: int = 2
    grad_accum: int = 4
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.001
    warmup_steps: int = 0
    schedule: str = "constant"  # constant, or cosine decay from lr (after warm-up) to min_lr_ratio * lr
    min_lr_ratio: float = 0.1
    clip_grad: float = 1.0
    mode: str = "jump"  # jump: jump fine-tuning + in-attention; full: everything; stage: everything, no rhythm
    rhythm_dropout: float = 0.5  # per-attribute condition dropout (MusiConGen)
    context_dropout: float = 0.1  # STAGE: the mix replaced by the null context
    cfg_dropout: float = 0.2  # both conditions dropped together, for classifier-free guidance
    min_s: float = 5.0  # each batch is cropped to a random length in [min_s, max_s] seconds
    max_s: float | None = None  # None: the model's window_s, the longest sequence it generates
    save_every: int = 500
    keep: int = 2  # step folders kept besides the newest
    log_every: int = 10
    seed: int = 0
    device: str = "auto"
    bf16: bool = True  # autocast on CUDA only
    open_shards: int = DEFAULT_OPEN_SHARDS  # cache shards memory-mapped at once (and the shuffle's block)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"training mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1:
            raise InputError("steps, batch size and gradient accumulation must be at least 1")
        if self.min_s <= 0 or (self.max_s is not None and self.min_s > self.max_s):
            raise InputError("need 0 < min_s <= max_s")
        if self.schedule not in SCHEDULES:
            raise InputError(f"learning-rate schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("rhythm_dropout", "context_dropout", "cfg_dropout"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise InputError(f"{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def rhythm_share(self) -> float:
        """Expected share of training rows that see the rhythm (none in stage mode)."""
        return 0.0 if self.mode == "stage" else (1 - self.cfg_dropout) * (1 - self.rhythm_dropout)

    @property
    def context_share(self) -> float:
        return (1 - self.cfg_dropout) * (1 - self.context_dropout)


def settings_for(ckpt, steps: int, **given: Any) -> TrainSettings:
    """Settings suited to where `ckpt`'s LM comes from, with every non-None `given` value on top.

    A random LM: full mode, RANDOM_LM_LR, warm-up over 5 % of the steps, cosine decay. Trained or
    adapted weights (MusicGen): jump fine-tuning at 1e-5 with a constant rate (STAGE, MusiConGen).
    """
    from darc_bridge.model.checkpoint import is_random

    if is_random(ckpt, "lm"):
        base: dict[str, Any] = {"mode": "full", "lr": RANDOM_LM_LR, "warmup_steps": max(1, steps // 20),
                                "schedule": "cosine"}
    else:
        base = {"mode": "jump", "lr": PRETRAINED_LR, "warmup_steps": 0, "schedule": "constant"}
    base.update({k: v for k, v in given.items() if v is not None})
    return TrainSettings(steps=steps, **base)


def refuse_random_codec(ckpt) -> None:
    """An LM trained on a random codec's tokens learns nothing (2-5 codes per codebook on drums)."""
    from darc_bridge.model.checkpoint import is_random

    if is_random(ckpt, "codec"):
        raise CheckpointError("this checkpoint's codec is random (untrained): its tokens carry almost nothing of the "
                              "audio. Train a codec first (darc-bridge train codec --data AUDIO --out CODEC), or start "
                              "from MusicGen (darc-bridge model init --from-musicgen), and pass it as --init")


def crop_seconds(settings: TrainSettings, window_s: float) -> tuple[float, float]:
    """(min_s, max_s) of the training crops: at most the model's window, so that generation never runs
    at sequence positions training never reached (and the default reaches the full window)."""
    max_s = window_s if settings.max_s is None else settings.max_s
    if max_s > window_s + 1e-9:
        raise InputError(f"training crops of up to {max_s:g} s are longer than this model's {window_s:g} s window: "
                         f"pass --max-s {window_s:g} or less")
    return min(settings.min_s, max_s), max_s


class LossModule(nn.Module):
    """forward() -> loss, so DistributedDataParallel sees the whole computation."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, mix, drums, rhythm, beat, rhythm_on, context_on) -> torch.Tensor:
        return self.model.loss(mix, drums, rhythm, beat, rhythm_on=rhythm_on, context_on=context_on)


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    import torch.distributed as dist

    if device.startswith("cuda"):
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(request: str, local_rank: int = 0) -> str:
    if request == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if request.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("CUDA was requested but no GPU is available")
    return request


def condition_masks(rng: np.random.Generator, b: int, s: TrainSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(rhythm_on, context_on) per row: independent dropouts plus a joint CFG dropout."""
    both_off = rng.random(b) < s.cfg_dropout
    rhythm_on = (rng.random(b) >= s.rhythm_dropout) & ~both_off
    context_on = (rng.random(b) >= s.context_dropout) & ~both_off
    if s.mode == "stage":
        rhythm_on[:] = False
    return torch.from_numpy(rhythm_on.astype(np.float32)), torch.from_numpy(context_on.astype(np.float32))


def draw_batch(data: TokenCache, settings: TrainSettings, step: int, micro: int, dist_info: DistInfo,
               min_frames: int, max_frames: int, beat: bool) -> list[torch.Tensor | None]:
    """(mix, drums, rhythm, beat or None, rhythm_on, context_on) of one micro-batch, a function of
    (seed, step, micro, rank) only: each rank reads its own slice of the epoch order."""
    rng = np.random.default_rng([settings.seed, step, micro, dist_info.rank])
    position = (step * settings.grad_accum + micro) * settings.batch_size
    b = data.batch_at(position, settings.batch_size, rng, min_frames, max_frames, seed=settings.seed,
                      rank=dist_info.rank, world=dist_info.world)
    rhythm_on, context_on = condition_masks(rng, settings.batch_size, settings)
    return [b.mix, b.drums, b.rhythm, b.beat if beat else None, rhythm_on, context_on]


def prepare_model(ckpt, settings: TrainSettings) -> float:
    """Set what trains (jump: MusiConGen's layers; full / stage: everything but the idle cross-attention);
    returns the trainable fraction of the parameters."""
    model = ckpt.model
    if settings.mode == "jump":
        from darc_bridge.model.finetune import apply_jump_finetune

        return apply_jump_finetune(model).fraction
    model.requires_grad_(True)
    for name, p in model.named_parameters():
        if "cross" in name:  # MusicGen's text cross-attention is never fed: no gradient, and DDP would stall on it
            p.requires_grad_(False)
    return sum(p.numel() for p in model.parameters() if p.requires_grad) / sum(p.numel() for p in model.parameters())


def latest_step_dir(out: Path) -> Path | None:
    link = out / LATEST
    if link.is_symlink() or link.exists():
        target = link.resolve()
        if (target / STATE_FILE).is_file() and (target / "darc.json").is_file():
            return target
    return None


def _point_latest(out: Path, target: Path) -> None:
    tmp = out / f".{LATEST}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, out / LATEST)


def save_training_checkpoint(out: Path, ckpt, optimizer, step: int, settings: TrainSettings, extra: dict) -> Path:
    """OUT/step_N: train state first, the DARC checkpoint (manifest last), then `latest` is switched."""
    from darc_bridge.audio.io import atomic_write
    from darc_bridge.model.checkpoint import save_checkpoint

    folder = out / f"step_{step:07d}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    state = {"step": step, "optimizer": optimizer.state_dict(), "settings": asdict(settings), **extra}
    atomic_write(folder / STATE_FILE, lambda tmp: torch.save(state, tmp), suffix=".pt")
    ckpt.source = f"train:{settings.mode}:step{step}"
    ckpt.lm_source = ckpt.source
    save_checkpoint(ckpt, folder, overwrite=True)
    _point_latest(out, folder)
    steps = sorted(p for p in out.glob("step_*") if p.is_dir() and p != folder)
    for old in steps[: max(0, len(steps) - settings.keep)]:
        shutil.rmtree(old, ignore_errors=True)
    log.info("checkpoint %s", folder)
    return folder


def weights_digest(model: nn.Module) -> str:
    """sha256 of the trainable weights: equal on every DDP rank when gradients were synchronised."""
    import hashlib

    h = hashlib.sha256()
    for p in model.parameters():
        if p.requires_grad:
            h.update(p.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def _lr_at(step: int, s: TrainSettings) -> float:
    if s.warmup_steps and step < s.warmup_steps:
        return s.lr * (step + 1) / s.warmup_steps
    if s.schedule == "cosine":
        span = max(1, s.steps - s.warmup_steps)
        progress = min(1.0, (step - s.warmup_steps) / span)
        return s.lr * (s.min_lr_ratio + (1 - s.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return s.lr


def train(
    cache_dir: str | Path,
    out_dir: str | Path,
    init: str | None,
    settings: TrainSettings,
    preset: str = "tiny",
    stop_after: int | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train until `settings.steps` (or `stop_after` more steps, for tests); returns a summary.

    `deadline` (a time.time() value): stop after the step that passes it and save a checkpoint, so
    that a run with a fixed time budget (one GPU loan) ends resumable.

    `init` is a checkpoint folder to start from; None starts from random weights of `preset`.
    Its codec must be the one the cache was built with.
    """
    from tqdm import tqdm

    from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint
    from darc_bridge.train.cache import codec_fingerprint

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputError(f"training output is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(settings.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist_info = init_distributed(device)
    data = TokenCache(cache_dir, open_shards=settings.open_shards)

    resume = latest_step_dir(out)
    if resume is not None:
        ckpt = load_checkpoint(resume)
        state = torch.load(resume / STATE_FILE, weights_only=False)
        start_step = int(state["step"])
        log.info("resuming from %s (step %d)", resume, start_step)
    else:
        ckpt = load_checkpoint(init) if init else random_checkpoint(preset, seed=settings.seed,
                                                                     rhythm_settings=None)
        state, start_step = None, 0
    refuse_random_codec(ckpt)
    if codec_fingerprint(ckpt.codec) != data.manifest["codec"]:
        raise CheckpointError("the token cache was built with another codec than this checkpoint's: rebuild the "
                              "cache with this checkpoint (darc-bridge train cache)")
    classes = data[0].rhythm.shape[0]
    if classes != ckpt.config.rhythm_classes:
        raise CheckpointError(f"cache rhythm has {classes} classes, the model {ckpt.config.rhythm_classes}")
    beat = bool(ckpt.config.beat_conditioning)
    if beat and not data.has_beat:
        raise CheckpointError(f"this model has beat conditioning but the token cache {cache_dir} holds no beat "
                              "features: rebuild it into a new folder with build_cache(..., beat=True)")
    fraction = prepare_model(ckpt, settings)
    model = ckpt.model.to(device).train()
    wrapped: nn.Module = LossModule(model)
    if dist_info.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(wrapped, device_ids=[dist_info.local_rank] if device.startswith("cuda")
                                          else None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, betas=settings.betas, weight_decay=settings.weight_decay)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
    frame_rate = data.frame_rate
    min_s, max_s = crop_seconds(settings, ckpt.config.window_s)
    min_frames, max_frames = int(min_s * frame_rate), int(max_s * frame_rate)
    segment_s = float(data.manifest.get("segments", {}).get("target_s", max_s))
    if segment_s < max_s:
        log.warning("cache segments are %.1f s, shorter than the %.1f s crops asked for: the model never trains on "
                    "its full window (rebuild the cache with --target-s %g)", segment_s, max_s, max_s)
    if dist_info.main:
        log.info("training %s: %d of %d parameters trainable, crops %.1f-%.1f s, %.0f %% of rows see the rhythm "
                 "(rhythm dropout %.2f, CFG dropout %.2f), %.0f %% the mix (context dropout %.2f)",
                 settings.mode, sum(p.numel() for p in params), sum(p.numel() for p in model.parameters()),
                 min_s, max_s, 100 * settings.rhythm_share, settings.rhythm_dropout, settings.cfg_dropout,
                 100 * settings.context_share, settings.context_dropout)
    autocast = device.startswith("cuda") and settings.bf16
    end_step = settings.steps if stop_after is None else min(settings.steps, start_step + stop_after)
    bar = tqdm(total=settings.steps, initial=start_step, desc=f"train {settings.mode}", unit="step",
               disable=not dist_info.main, file=sys.stderr, dynamic_ncols=True)
    losses: list[float] = []
    history: list[list[float]] = list(state.get("history", [])) if state is not None else []  # [step, loss]
    step, t0, frames = start_step, time.perf_counter(), 0
    try:
        while step < end_step:
            for g in optimizer.param_groups:
                g["lr"] = _lr_at(step, settings)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for micro in range(settings.grad_accum):
                batch = [None if t is None else t.to(device)
                         for t in draw_batch(data, settings, step, micro, dist_info, min_frames, max_frames, beat)]
                drums = batch[1]
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
                    loss = wrapped(*batch) / settings.grad_accum
                loss.backward()
                total += float(loss.detach())
                frames += drums.shape[0] * drums.shape[-1]
            if not math.isfinite(total):
                raise RuntimeError(f"loss became {total} at step {step}: lower the learning rate")
            grad_norm = float(torch.nn.utils.clip_grad_norm_(params, settings.clip_grad))
            optimizer.step()
            step += 1
            losses.append(total)
            history.append([step, total])
            speed = frames / max(time.perf_counter() - t0, 1e-9) / frame_rate
            bar.update(1)
            bar.set_postfix(loss=f"{total:.3f}", gnorm=f"{grad_norm:.2f}", audio_s_per_s=f"{speed:.1f}")
            if dist_info.main and step % settings.log_every == 0:
                log.info("step %d loss %.4f grad %.2f %.1f s audio/s", step, total, grad_norm, speed)
            out_of_time = deadline is not None and time.time() >= deadline
            if step % settings.save_every == 0 or step == settings.steps or out_of_time:
                _save(out, ckpt, optimizer, step, settings, dist_info, losses, history)
            if out_of_time:
                log.info("time budget spent at step %d of %d: saved, run again to continue", step, settings.steps)
                break
    finally:
        bar.close()
    return {"start_step": start_step, "step": step, "losses": losses, "trainable_fraction": fraction,
            "rhythm_share": settings.rhythm_share, "crop_s": (min_s, max_s), "history": history,
            "latest": str(out / LATEST), "world": dist_info.world, "rank": dist_info.rank,
            "weights_digest": weights_digest(model), "shards_opened": data.reader.loads,
            "peak_open_shards": data.reader.peak_open}


def _save(out: Path, ckpt, optimizer, step: int, settings: TrainSettings, dist_info: DistInfo,
          losses: list[float], history: list[list[float]]) -> None:
    if dist_info.main:  # save_checkpoint copies the weights to the CPU itself
        save_training_checkpoint(out, ckpt, optimizer, step, settings, {"recent_loss": losses[-50:],
                                                                         "history": history})
    if dist_info.world > 1:
        import torch.distributed as dist

        dist.barrier()
