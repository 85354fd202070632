"""The reference decoding loop: audiocraft's streaming API, as darc-bridge ran it before the
explicit decode path (darc_bridge.model.decode). Kept only for the parity tests.

It feeds the prefix as one chunk and then one pattern step per call inside `lm.streaming()`
(keys/values grown by concatenation, einsum attention, the idle text cross-attention recomputed)
and adds the rhythm through temporary forward pre-hooks that read the transformer's streaming
offset. Sampling uses `torch.multinomial`, as the product's path did.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

from darc_bridge.engines.base import CancelToken
from darc_bridge.model.generate import UNKNOWN, SamplingSettings
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import preset
from darc_bridge.model.sampling import Guidance
from darc_bridge.model.tokens import build_codes


def tiny(**overrides) -> DarcLM:
    """A tiny DARC LM with the same random weights in every test module (seed 0)."""
    torch.manual_seed(0)
    return DarcLM(preset("tiny", **overrides)).eval()


def reference_sample(logits: torch.Tensor, temperature: float, top_k: int, top_p: float,
                     generator: torch.Generator) -> torch.Tensor:
    """The sampler the streaming path used (torch.multinomial)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if top_p > 0.0:
        sorted_p, order = flat.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        tokens = order.gather(-1, torch.multinomial(sorted_p / sorted_p.sum(-1, keepdim=True), 1, generator=generator))
    elif 0 < top_k < flat.shape[-1]:
        top_vals, top_idx = flat.topk(top_k, dim=-1)
        tokens = top_idx.gather(-1, torch.multinomial(top_vals / top_vals.sum(-1, keepdim=True), 1,
                                                      generator=generator))
    else:
        tokens = torch.multinomial(flat, 1, generator=generator)
    return tokens.reshape(probs.shape[:-1])


class _StreamingInAttention:
    """The old hook-based in-attention: slices the conditioning at the streaming offset."""

    def __init__(self, model: DarcLM) -> None:
        self.transformer = model.lm.transformer
        self.cond: torch.Tensor | None = None
        self.handles = [self.transformer.layers[i].register_forward_pre_hook(self._hook)
                        for i in model.config.injection_layers]

    def chunk(self, length: int) -> torch.Tensor:
        offsets = self.transformer._streaming_state.get("offsets")
        start = 0 if offsets is None else int(offsets.reshape(-1)[0])
        return self.cond[:, start:start + length]

    def _hook(self, module, args):
        if self.cond is None:
            return None
        x = args[0]
        return (x + self.chunk(x.shape[1]).to(x.dtype), *args[1:])

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


@contextlib.contextmanager
def _hooks(model: DarcLM) -> Iterator[_StreamingInAttention]:
    inj = _StreamingInAttention(model)
    try:
        yield inj
    finally:
        inj.remove()


def _forward(model: DarcLM, inj: _StreamingInAttention, sequence: torch.Tensor,
             cond: torch.Tensor | None) -> torch.Tensor:
    b, k, s = sequence.shape
    x = model.embed(sequence)
    inj.cond = cond
    try:
        if cond is not None and model.config.rhythm_at_input:
            x = x + inj.chunk(s).to(x.dtype)
        src = x.new_zeros(b, 1, x.shape[-1]) if model.config.cross_attention else None
        out = model.lm.transformer(x, cross_attention_src=src)
    finally:
        inj.cond = None
    if model.lm.out_norm is not None:
        out = model.lm.out_norm(out)
    return torch.stack([model.lm.linears[i](out) for i in range(k)], dim=1)


@torch.no_grad()
def reference_window(
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
    """Drum codes (K, Tm) for one window, exactly as the streaming path made them."""
    device = next(model.parameters()).device
    k, n_mix = mix.shape
    guidance = Guidance(settings.cfg_coef, settings.rhythm_strength)
    weights = guidance.weights(rhythm is not None)
    rows = [r for r in ("full", "context", "null") if r in weights]
    r = len(rows)
    drums = torch.full((k, n_mix), UNKNOWN, dtype=torch.long, device=device)
    drums[:, :forced.shape[-1]] = forced.to(device)
    ctx = torch.stack([mix.to(device) if row != "null" else torch.full_like(mix, model.pad, device=device)
                       for row in rows])
    codes = build_codes(ctx, drums[None].expand(r, -1, -1), model.delimiter_token)
    pattern = model.lm.pattern_provider.get_pattern(codes.shape[-1])
    seq, _, valid = pattern.build_pattern_sequence(codes, model.pad)
    n_steps = seq.shape[-1]
    rhythm_on = torch.tensor([row == "full" for row in rows], device=device, dtype=torch.float32)
    context_on = torch.tensor([row != "null" for row in rows], device=device, dtype=torch.float32)
    cond = model.step_conditioning(n_mix, n_steps, None if rhythm is None else rhythm.to(device)[None], rhythm_on,
                                   None if beat is None else beat.to(device)[None], context_on)
    first = pattern.get_first_step_with_timesteps(n_mix + 1 + forced.shape[-1])
    with model.lm.streaming(), _hooks(model) as inj:
        prev = 0
        for step in range(first, n_steps):
            logits = _forward(model, inj, seq[..., prev:step], cond)[:, :, -1]
            guided = Guidance.combine(logits, rows, weights)
            tokens = reference_sample(guided, settings.temperature, settings.top_k, settings.top_p, generator)
            tokens = torch.where(valid[:, step], tokens, torch.full_like(tokens, model.pad))
            column = seq[:, :, step]
            seq[:, :, step] = torch.where(column == UNKNOWN, tokens[None].expand(r, -1), column)
            prev = step
            if on_step is not None:
                on_step()
            if cancel is not None:
                cancel.raise_if_cancelled()
    out, _, _ = pattern.revert_pattern_sequence(seq[:1], special_token=UNKNOWN)
    return out[0, :, n_mix + 1:2 * n_mix + 1]


@torch.no_grad()
def reference_drums(model: DarcLM, mix: torch.Tensor, rhythm: torch.Tensor | None, settings: SamplingSettings,
                    window: int, overlap: int, beat: torch.Tensor | None = None) -> torch.Tensor:
    """The old windowed generation over the streaming loop (one token stream, forced overlaps)."""
    from darc_bridge.model.generate import plan_windows

    generator = torch.Generator(device=next(model.parameters()).device).manual_seed(int(settings.seed))
    n = mix.shape[-1]
    drums = torch.full((model.n_q, n), UNKNOWN, dtype=torch.long)
    for w in plan_windows(n, window, overlap):
        drums[:, w.start:w.end] = reference_window(
            model, mix[:, w.start:w.end], drums[:, w.start:w.start + w.n_forced],
            None if rhythm is None else rhythm[:, w.start:w.end],
            None if beat is None else beat[:, w.start:w.end], settings, generator)
    return drums
