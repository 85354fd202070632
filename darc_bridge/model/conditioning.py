"""Rhythm (and optional beat) conditioning: per-frame features -> Linear(C, dim) -> added to the
input and again before the chosen layers (MusiConGen's adaptive in-attention).

audiocraft's `sum` and `input_interpolate` fusers are wrong for time-aligned features while
streaming, so the injection is a forward pre-hook on each chosen layer that slices the
per-step conditioning at the transformer's own streaming offset.
"""

from __future__ import annotations

import torch
from torch import nn

from darc_bridge.model.tokens import first_drum_step, frames_to_steps


class FrameConditioner(nn.Module):
    """Projects rhythm activations (and beat/downbeat rows) to the model width, per pattern step."""

    def __init__(self, dim: int, rhythm_classes: int, beat: bool = False) -> None:
        super().__init__()
        self.rhythm_classes = rhythm_classes
        self.rhythm_proj = nn.Linear(rhythm_classes, dim)
        self.beat_proj = nn.Linear(2, dim) if beat else None

    def zero_init(self) -> None:
        """Start as a no-op, so an adapted pretrained LM behaves exactly as before training."""
        for proj in (self.rhythm_proj, self.beat_proj):
            if proj is not None:
                nn.init.zeros_(proj.weight)
                nn.init.zeros_(proj.bias)

    def forward(
        self,
        n_mix: int,
        n_steps: int,
        rhythm: torch.Tensor | None,
        rhythm_on: torch.Tensor,
        beat: torch.Tensor | None = None,
        beat_on: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, n_steps, dim) additive conditioning; rows with `*_on` == 0 get none (the null condition).

        `rhythm` is (B, C, Td) per drum frame; `beat` is (B, 2, Td). Steps that do not predict a drum
        frame get exactly zero, so the mix prefix is never touched.
        """
        weight = self.rhythm_proj.weight
        b = rhythm_on.shape[0]
        out = weight.new_zeros(b, n_steps, weight.shape[0])
        parts = [(rhythm, rhythm_on, self.rhythm_proj)]
        if self.beat_proj is not None and beat is not None:
            parts.append((beat, beat_on if beat_on is not None else rhythm_on, self.beat_proj))
        for feats, on, proj in parts:
            if feats is None:
                continue
            if feats.shape[0] != b:
                feats = feats.expand(b, -1, -1)
            steps = frames_to_steps(feats.to(weight.dtype), n_mix, n_steps)
            valid = torch.zeros(n_steps, dtype=weight.dtype, device=weight.device)
            start = first_drum_step(n_mix)
            valid[start:start + feats.shape[-1]] = 1.0
            gate = on.to(weight.dtype).view(b, 1, 1) * valid.view(1, n_steps, 1)
            out = out + proj(steps) * gate
        return out


class InAttention:
    """Adds the current chunk of per-step conditioning to the input of chosen transformer layers.

    The chunk is read at the transformer's streaming offset (the number of pattern steps already
    cached), so it stays aligned whether the model sees the whole sequence, a multi-step prefix
    or one step at a time, and for any batch layout (CFG rows are built by the caller).
    """

    def __init__(self, transformer: nn.Module, layers: list[int]) -> None:
        self.transformer = transformer
        self.layers = list(layers)
        self.cond: torch.Tensor | None = None
        self._handles = [
            transformer.layers[i].register_forward_pre_hook(self._hook, with_kwargs=True) for i in self.layers
        ]

    def offset(self) -> int:
        offsets = self.transformer._streaming_state.get("offsets")
        return 0 if offsets is None else int(offsets.reshape(-1)[0])

    def chunk(self, length: int) -> torch.Tensor | None:
        """The conditioning for the `length` steps starting at the current offset."""
        if self.cond is None:
            return None
        start = self.offset()
        piece = self.cond[:, start:start + length]
        if piece.shape[1] != length:
            raise ValueError(f"conditioning covers {self.cond.shape[1]} steps, model is at step {start + length}")
        return piece

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        if self.cond is None:
            return None
        x = args[0]
        piece = self.chunk(x.shape[1])
        if piece.shape[0] != x.shape[0]:
            raise ValueError(f"conditioning batch {piece.shape[0]} does not match model batch {x.shape[0]}")
        return (x + piece.to(x.dtype), *args[1:]), kwargs

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
