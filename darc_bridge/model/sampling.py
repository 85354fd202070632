"""Guidance and token sampling.

Three conditionings of the same drums are scored in one batch:
  full    = mix context + rhythm,   context = mix context, null rhythm,   null = pad context, null rhythm.
Guided logits:
  l = l_null + cfg * (l_context - l_null) + cfg * rhythm_strength * (l_full - l_context)
so rhythm_strength 0 ignores the prompt exactly, 1 is plain classifier-free guidance on the full
condition (as trained), and > 1 pushes rhythm adherence. Rows whose weight is 0 are not computed.

Everything here runs on the logits' device without reading a value back to the host, so a decode
step never waits for the GPU. The draw is the exponential-race form of `torch.multinomial`'s
one-sample path (argmax of p / E with E ~ Exp(1)): the same tokens from the same generator on
the CPU, without multinomial's input checks (a host sync on cuda).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROWS = ("full", "context", "null")


@dataclass(frozen=True)
class Guidance:
    cfg_coef: float = 3.0
    rhythm_strength: float = 1.0

    def weights(self, has_rhythm: bool) -> dict[str, float]:
        """Weight of each row's logits (they sum to 1); rows with weight 0 are dropped."""
        cfg = float(self.cfg_coef)
        rs = float(self.rhythm_strength) if has_rhythm else 0.0
        w = {"full": cfg * rs, "context": cfg * (1.0 - rs), "null": 1.0 - cfg}
        kept = {k: v for k, v in w.items() if v != 0.0}
        return kept or {"context": 1.0}

    @staticmethod
    def combine(logits: torch.Tensor, rows: list[str], weights: dict[str, float]) -> torch.Tensor:
        """Weighted sum over the row axis (dim 0) of `logits`, whose rows are named by `rows`."""
        out = None
        for i, name in enumerate(rows):
            term = logits[i].float() * weights[name]
            out = term if out is None else out + term
        return out


def sample_tokens(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row of `logits` (..., card). Temperature 0 is greedy; top_p > 0 wins over top_k."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    flat = probs.reshape(-1, probs.shape[-1])
    if top_p > 0.0:
        sorted_p, order = flat.sort(dim=-1, descending=True)
        drop = sorted_p.cumsum(dim=-1) - sorted_p > top_p
        sorted_p = sorted_p.masked_fill(drop, 0.0)
        pick = draw(sorted_p / sorted_p.sum(-1, keepdim=True), generator)
        tokens = order.gather(-1, pick)
    elif 0 < top_k < flat.shape[-1]:
        top_vals, top_idx = flat.topk(top_k, dim=-1)
        pick = draw(top_vals / top_vals.sum(-1, keepdim=True), generator)
        tokens = top_idx.gather(-1, pick)
    else:
        tokens = draw(flat, generator)
    return tokens.reshape(probs.shape[:-1])


def draw(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of `probs` (N, C), as `torch.multinomial(probs, 1, generator=generator)`."""
    race = torch.empty_like(probs).exponential_(1, generator=generator)
    return (probs / race).argmax(dim=-1, keepdim=True)
