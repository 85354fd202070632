"""Streaming generation of drum tokens, window by window for long regions.

One window is the sequence `[mix window | delimiter | drums]`: the prefix goes through the model
in one chunk, then one pattern step per call with cached keys/values. A region longer than the
window is cut into overlapping windows; each later window is prompted with the last `overlap`
frames of drums already made (forced tokens right after the delimiter) and continues from there.
All windows write into one token stream that is decoded once, so there is no seam in the audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from darc_bridge.engines.base import CancelToken
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.sampling import Guidance, sample_tokens
from darc_bridge.model.tokens import build_codes

log = logging.getLogger(__name__)

UNKNOWN = -1  # not generated yet (never fed to the model)


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0
    rhythm_strength: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Window:
    """Drum frames [start, end); the first `n_forced` are carried over from the previous window."""

    start: int
    end: int
    n_forced: int

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_windows(n_frames: int, window: int, overlap: int) -> list[Window]:
    """Cover [0, n_frames) with windows of at most `window` frames, each continuing the previous.

    Every window but the first starts `overlap` frames (or more, for the last one, so that it is
    full length) before the end of what exists, so each new window has drums to continue from.
    """
    if n_frames <= 0:
        raise ValueError("nothing to generate: region has no frames")
    if window < 2:
        raise ValueError(f"window must hold at least 2 frames, got {window}")
    overlap = max(1, min(overlap, window - 1))
    plan = [Window(0, min(window, n_frames), 0)]
    while plan[-1].end < n_frames:
        done = plan[-1].end
        start = min(done - overlap, max(0, n_frames - window))
        end = min(start + window, n_frames)
        plan.append(Window(start, end, done - start))
    return plan


def _rows(guidance: Guidance, has_rhythm: bool) -> tuple[list[str], dict[str, float]]:
    weights = guidance.weights(has_rhythm)
    return [r for r in ("full", "context", "null") if r in weights], weights


@torch.no_grad()
def generate_window(
    model: DarcLM,
    mix: torch.Tensor,
    forced: torch.Tensor,
    rhythm: torch.Tensor | None,
    beat: torch.Tensor | None,
    settings: SamplingSettings,
    generator: torch.Generator,
    on_step: Callable[[], None] | None = None,
    cancel: CancelToken | None = None,
) -> torch.Tensor:
    """Drum codes (K, Tm) for one window: mix codes (K, Tm), forced drum codes (K, F), rhythm (C, Tm)."""
    device = next(model.parameters()).device
    k, n_mix = mix.shape
    n_drums = n_mix
    rows, weights = _rows(Guidance(settings.cfg_coef, settings.rhythm_strength), rhythm is not None)
    r = len(rows)
    drums = torch.full((k, n_drums), UNKNOWN, dtype=torch.long, device=device)
    drums[:, :forced.shape[-1]] = forced.to(device)
    ctx = torch.stack([mix.to(device) if row != "null" else torch.full_like(mix, model.pad, device=device)
                       for row in rows])
    codes = build_codes(ctx, drums[None].expand(r, -1, -1), model.delimiter_token)
    pattern = model.lm.pattern_provider.get_pattern(codes.shape[-1])
    seq, _, valid = pattern.build_pattern_sequence(codes, model.pad)
    valid = valid.to(device)
    n_steps = seq.shape[-1]
    rhythm_on = torch.tensor([row == "full" for row in rows], device=device, dtype=torch.float32)
    context_on = torch.tensor([row != "null" for row in rows], device=device, dtype=torch.float32)
    cond = model.step_conditioning(
        n_mix, n_steps,
        None if rhythm is None else rhythm.to(device)[None],
        rhythm_on,
        None if beat is None else beat.to(device)[None],
        context_on,
    )
    first = pattern.get_first_step_with_timesteps(n_mix + 1 + forced.shape[-1])
    with model.streaming():
        prev = 0
        for step in range(first, n_steps):
            logits = model(seq[..., prev:step], cond)[:, :, -1]  # [R, K, card]
            guided = Guidance.combine(logits, rows, weights)  # [K, card]
            tokens = sample_tokens(guided, settings.temperature, settings.top_k, settings.top_p, generator)
            tokens = torch.where(valid[:, step], tokens, torch.full_like(tokens, model.pad))
            column = seq[:, :, step]
            seq[:, :, step] = torch.where(column == UNKNOWN, tokens[None].expand(r, -1), column)
            prev = step
            if on_step is not None:
                on_step()
            if cancel is not None:
                cancel.raise_if_cancelled()
    out, _, _ = pattern.revert_pattern_sequence(seq[:1], special_token=UNKNOWN)
    result = out[0, :, n_mix + 1:n_mix + 1 + n_drums]
    if (result < 0).any() or (result >= model.config.card).any():
        raise RuntimeError("generation left frames unfilled or produced special tokens")
    return result


def count_steps(plan: list[Window], n_q: int) -> int:
    """Generation steps over a plan: one per generated frame, plus the delay tail of each window."""
    return sum(w.length - w.n_forced + n_q - 1 for w in plan)


@torch.no_grad()
def generate_drums(
    model: DarcLM,
    mix: torch.Tensor,
    rhythm: torch.Tensor | None,
    settings: SamplingSettings,
    *,
    beat: torch.Tensor | None = None,
    window_frames: int | None = None,
    overlap_frames: int | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
) -> tuple[torch.Tensor, dict]:
    """Drum codes (K, N) for mix codes (K, N), following `rhythm` (C, N) when given."""
    cfg = model.config
    n = mix.shape[-1]
    for name, feats in (("rhythm", rhythm), ("beat", beat)):
        if feats is not None and feats.shape[-1] != n:
            raise ValueError(f"{name} covers {feats.shape[-1]} frames, the mix {n}")
    window = window_frames or int(round(cfg.window_s * cfg.frame_rate))
    overlap = overlap_frames or int(round(cfg.overlap_s * cfg.frame_rate))
    plan = plan_windows(n, window, overlap)
    total = count_steps(plan, model.n_q)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device)
    generator.manual_seed(int(settings.seed))
    done = 0

    def on_step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done / total)

    drums = torch.full((model.n_q, n), UNKNOWN, dtype=torch.long)
    for w in plan:
        piece = generate_window(
            model,
            mix[:, w.start:w.end],
            drums[:, w.start:w.start + w.n_forced],
            None if rhythm is None else rhythm[:, w.start:w.end],
            None if beat is None else beat[:, w.start:w.end],
            settings,
            generator,
            on_step,
            cancel,
        )
        drums[:, w.start:w.end] = piece.cpu()
        log.debug("window %d..%d done (%d forced)", w.start, w.end, w.n_forced)
    if (drums == UNKNOWN).any():
        raise RuntimeError("the window plan left frames without drums")
    return drums, {"windows": len(plan), "steps": done, "frames": n}
