"""DarcLM: audiocraft's LMModel with a mix prefix, a delimiter token and rhythm in-attention.

The wrapped `LMModel` keeps MusicGen's exact parameter layout (so MusicGen weights load 1:1);
what DARC adds lives beside it: the delimiter's embedding rows (one per codebook, kept as their
own parameter so fine-tuning can train them while the pretrained rows stay frozen) and the
rhythm/beat projections.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from darc_bridge.compat import import_audiocraft
from darc_bridge.model.conditioning import FrameConditioner, InAttention
from darc_bridge.model.presets import DarcConfig, lm_omegaconf
from darc_bridge.model.tokens import build_codes, drum_mask, null_context

log = logging.getLogger(__name__)


def build_audiocraft_lm(config: DarcConfig) -> nn.Module:
    """A random-weight audiocraft LMModel of the config's shape (no conditioners, no download)."""
    import_audiocraft()
    from audiocraft.models.builders import get_lm_model

    return get_lm_model(lm_omegaconf(config))


class DarcLM(nn.Module):
    """Predicts drum tokens after `[mix | delimiter]`, following per-frame rhythm features."""

    def __init__(self, config: DarcConfig, lm: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.lm = lm if lm is not None else build_audiocraft_lm(config)
        if self.lm.card != config.card or self.lm.num_codebooks != config.n_q:
            raise ValueError(f"LM has {self.lm.num_codebooks} x {self.lm.card} tokens, config says "
                             f"{config.n_q} x {config.card}")
        std = float(self.lm.emb[0].weight.detach().float().std())
        self.delimiter = nn.Parameter(torch.randn(config.n_q, config.dim) * std)
        self.conditioner = FrameConditioner(config.dim, config.rhythm_classes, beat=config.beat_conditioning)
        self.in_attention = InAttention(self.lm.transformer, config.injection_layers)

    @property
    def pad(self) -> int:
        return self.config.pad_token

    @property
    def delimiter_token(self) -> int:
        return self.config.delimiter_token

    @property
    def n_q(self) -> int:
        return self.config.n_q

    def streaming(self):
        """Key/value caching context for step-by-step generation (audiocraft's streaming API)."""
        return self.lm.streaming()

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
        """Logits (B, K, S, card) for pattern steps `sequence` (B, K, S).

        `cond` is the per-step conditioning (B, S_total, dim) of the *whole* pattern sequence; the
        slice for these steps is found from the streaming offset, both here and in the hooks.
        """
        b, k, s = sequence.shape
        if k != self.n_q:
            raise ValueError(f"sequence has {k} codebooks, model expects {self.n_q}")
        x = self.embed(sequence)
        self.in_attention.cond = cond
        try:
            if cond is not None and self.config.rhythm_at_input:
                x = x + self.in_attention.chunk(s).to(x.dtype)
            out = self.lm.transformer(x, cross_attention_src=self._null_text(b, x))
        finally:
            self.in_attention.cond = None
        if self.lm.out_norm is not None:
            out = self.lm.out_norm(out)
        return torch.stack([self.lm.linears[i](out) for i in range(k)], dim=1)

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
