"""DarcLM: audiocraft's LMModel with a mix prefix, a delimiter token and rhythm in-attention.

The wrapped `LMModel` keeps MusicGen's exact parameter layout (so MusicGen weights load 1:1);
what DARC adds lives beside it: the delimiter's embedding rows (one per codebook, kept as their
own parameter so fine-tuning can train them while the pretrained rows stay frozen) and the
rhythm/beat projections.

The forward pass runs the transformer's layers itself so that the rhythm enters as an explicit
argument before the chosen layers (no hooks). That also makes activation checkpointing exact:
a recomputed layer gets the same conditioning as its first run, because it is an input.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint as torch_checkpoint

from darc_bridge.compat import import_audiocraft
from darc_bridge.model.conditioning import FrameConditioner
from darc_bridge.model.presets import DarcConfig, lm_omegaconf
from darc_bridge.model.tokens import build_codes, drum_mask, null_context

log = logging.getLogger(__name__)


def build_audiocraft_lm(config: DarcConfig, device: str = "cpu") -> nn.Module:
    """A random-weight audiocraft LMModel of the config's shape (no conditioners, no download).

    `device="meta"` builds it without memory or initialisation, to be filled by
    `load_state_dict(..., assign=True)`.
    """
    import_audiocraft()
    from audiocraft.models.builders import get_lm_model

    return get_lm_model(lm_omegaconf(config, device))


def sin_embedding(positions: torch.Tensor, dim: int, max_period: float, dtype: torch.dtype) -> torch.Tensor:
    """audiocraft's sinusoidal positions (B, T, dim) for a (B, T, 1) or (1, T, 1) position tensor."""
    from audiocraft.modules.transformer import create_sin_embedding

    return create_sin_embedding(positions, dim, max_period=max_period, dtype=dtype)


def _layer(layer: nn.Module, x: torch.Tensor, piece: torch.Tensor | None, src: torch.Tensor | None) -> torch.Tensor:
    """One transformer layer over a whole causal sequence, its self-attention through SDPA.

    audiocraft's custom attention has two branches: einsum with an explicit mask (what the model is
    built with, since it streams a chunk after cached keys exactly) and, with `memory_efficient`,
    `scaled_dot_product_attention(is_causal=True)`, exact only when queries and keys are the same
    sequence, as here (no streaming). The SDPA branch is the same loss and 1.5x faster a training
    step of `mini` on one CPU thread (batch 3 x 900 steps); it is chosen for this call only, inside
    the function activation checkpointing recomputes, so a recomputed layer runs it too."""
    if piece is not None:
        x = x + piece.to(x.dtype)
    attn, built = layer.self_attn, layer.self_attn.memory_efficient
    if attn._is_streaming:
        return layer(x, cross_attention_src=src)
    attn.memory_efficient = True
    try:
        return layer(x, cross_attention_src=src)
    finally:
        attn.memory_efficient = built


class DarcLM(nn.Module):
    """Predicts drum tokens after `[mix | delimiter]`, following per-frame rhythm features."""

    def __init__(self, config: DarcConfig, lm: nn.Module | None = None, device: str = "cpu") -> None:
        """`device="meta"`: shapes only (no memory, no random init), for loading with `assign=True`."""
        super().__init__()
        self.config = config
        self.lm = lm if lm is not None else build_audiocraft_lm(config, device)
        if self.lm.card != config.card or self.lm.num_codebooks != config.n_q:
            raise ValueError(f"LM has {self.lm.num_codebooks} x {self.lm.card} tokens, config says "
                             f"{config.n_q} x {config.card}")
        with torch.device(device):
            emb = self.lm.emb[0].weight
            std = 1.0 if emb.is_meta else float(emb.detach().float().std())
            self.delimiter = nn.Parameter(torch.randn(config.n_q, config.dim) * std)
            self.conditioner = FrameConditioner(config.dim, config.rhythm_classes, beat=config.beat_conditioning)
        self.injection_layers = frozenset(config.injection_layers)

    @property
    def pad(self) -> int:
        return self.config.pad_token

    @property
    def delimiter_token(self) -> int:
        return self.config.delimiter_token

    @property
    def n_q(self) -> int:
        return self.config.n_q

    def embed(self, sequence: torch.Tensor) -> torch.Tensor:
        """Sum of per-codebook embeddings (B, S, dim); delimiter tokens use the delimiter rows."""
        out = None
        for k in range(self.n_q):
            tok = sequence[:, k]
            is_delim = tok == self.delimiter_token
            e = self.lm.emb[k](tok.masked_fill(is_delim, self.pad))
            e = torch.where(is_delim[..., None], self.delimiter[k].to(e.dtype), e)
            out = e if out is None else out + e
        return out

    def forward(self, sequence: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, S, card) for the whole pattern sequence `sequence` (B, K, S).

        `cond` is the per-step conditioning (B, S, dim) from `step_conditioning`: added to the input
        (when `rhythm_at_input`) and again before each in-attention layer. Step-by-step decoding
        with cached keys and values is `darc_bridge.model.decode`.
        """
        b, k, s = sequence.shape
        if k != self.n_q:
            raise ValueError(f"sequence has {k} codebooks, model expects {self.n_q}")
        if cond is not None:
            if cond.shape[1] < s or cond.shape[0] != b:
                raise ValueError(f"conditioning {tuple(cond.shape)} does not cover a batch of {b} x {s} steps")
            cond = cond[:, :s]
        tr = self.lm.transformer
        x = self.embed(sequence)
        if cond is not None and self.config.rhythm_at_input:
            x = x + cond.to(x.dtype)
        if tr.positional_embedding != "sin":
            raise NotImplementedError(f"positional embedding {tr.positional_embedding!r}: DARC uses 'sin'")
        positions = torch.arange(s, device=x.device).view(1, -1, 1)
        x = x + tr.positional_scale * sin_embedding(positions, x.shape[-1], tr.max_period, x.dtype)
        src = self._null_text(b, x)
        checkpointed = tr.checkpointing != "none" and self.training and torch.is_grad_enabled()
        for i, layer in enumerate(tr.layers):
            piece = cond if cond is not None and i in self.injection_layers else None
            if checkpointed:
                x = torch_checkpoint(_layer, layer, x, piece, src, use_reentrant=False)
            else:
                x = _layer(layer, x, piece, src)
        if self.lm.out_norm is not None:
            x = self.lm.out_norm(x)
        return torch.stack([self.lm.linears[i](x) for i in range(k)], dim=1)

    def _null_text(self, batch: int, x: torch.Tensor) -> torch.Tensor | None:
        """MusicGen's text cross-attention, kept for weight compatibility, gets one zero vector:
        the same input it saw for an empty (dropped) description."""
        if not self.config.cross_attention:
            return None
        return x.new_zeros(batch, 1, x.shape[-1])

    def step_conditioning(
        self,
        n_mix: int,
        n_steps: int,
        rhythm: torch.Tensor | None,
        rhythm_on: torch.Tensor,
        beat: torch.Tensor | None = None,
        beat_on: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Per-step conditioning for a batch; None when nothing conditions any row."""
        if rhythm is None and (beat is None or self.conditioner.beat_proj is None):
            return None
        if rhythm is not None and rhythm.shape[1] != self.config.rhythm_classes:
            raise ValueError(f"rhythm has {rhythm.shape[1]} classes, model expects {self.config.rhythm_classes}")
        return self.conditioner(n_mix, n_steps, rhythm, rhythm_on, beat, beat_on)

    def compute_predictions(
        self,
        mix: torch.Tensor,
        drums: torch.Tensor,
        rhythm: torch.Tensor | None = None,
        beat: torch.Tensor | None = None,
        rhythm_on: torch.Tensor | None = None,
        context_on: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced logits (B, K, T, card) over `[mix | delimiter | drums]` and the drum mask (B, K, T).

        `rhythm_on` / `context_on` (B,) switch rows to the null rhythm / null context (the pads),
        which is how training drops conditions for classifier-free guidance.
        """
        b, _, n_mix = mix.shape
        n_drums = drums.shape[-1]
        codes = build_codes(mix, drums, self.delimiter_token)
        ones = torch.ones(b, device=mix.device)
        context_on = ones if context_on is None else context_on
        rhythm_on = ones if rhythm_on is None else rhythm_on
        codes = torch.where(context_on.view(b, 1, 1).bool(), codes, null_context(codes, n_mix, self.pad))
        pattern = self.lm.pattern_provider.get_pattern(codes.shape[-1])
        seq, _, _ = pattern.build_pattern_sequence(codes, self.pad)
        cond = self.step_conditioning(n_mix, seq.shape[-1], rhythm, rhythm_on, beat, context_on)
        logits = self(seq, cond)  # [B, K, S, card]
        logits, _, valid = pattern.revert_pattern_logits(logits.permute(0, 3, 1, 2), float("nan"))
        logits = logits.permute(0, 2, 3, 1)  # [B, K, T, card]
        mask = valid.to(mix.device)[None] & drum_mask(self.n_q, n_mix, n_drums, mix.device)[None]
        return logits, mask.expand(b, -1, -1)

    def loss(self, mix: torch.Tensor, drums: torch.Tensor, rhythm: torch.Tensor | None = None,
             beat: torch.Tensor | None = None, **kwargs: torch.Tensor) -> torch.Tensor:
        """Cross-entropy on drum positions only (the mix prefix and delimiter are never targets)."""
        logits, mask = self.compute_predictions(mix, drums, rhythm, beat, **kwargs)
        targets = build_codes(mix, drums, self.delimiter_token)
        return F.cross_entropy(logits[mask].float(), targets[mask])
