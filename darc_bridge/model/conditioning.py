"""Rhythm (and optional beat) conditioning: per-frame features -> Linear(C, dim) -> added to the
input and again before the chosen layers (MusiConGen's adaptive in-attention).

audiocraft's `sum` and `input_interpolate` fusers are wrong for time-aligned features while
streaming, so the conditioning is an explicit argument of the forward passes (DarcLM.forward for
whole sequences, darc_bridge.model.decode step by step): no hooks, no hidden state.
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


class ConditionStream:
    """Serves per-step conditioning one decoding step at a time, keeping its own position.

    audiocraft's streaming modules each keep their own offset; so does this one, on the device,
    instead of reading the transformer's private streaming state (which cost a host sync a step).
    The position advances in place, so the same tensors serve a captured CUDA graph.
    """

    def __init__(self, cond: torch.Tensor, start: int = 0) -> None:
        self.cond = cond  # (B, S, dim)
        self.position = torch.full((1,), start, dtype=torch.long, device=cond.device)

    def next(self) -> torch.Tensor:
        """The conditioning rows (B, 1, dim) of the current step; moves on by one step."""
        row = self.cond.index_select(1, self.position)
        self.position.add_(1)
        return row

    def select_rows(self, index: torch.Tensor) -> ConditionStream:
        out = ConditionStream(self.cond.index_select(0, index))
        out.position.copy_(self.position)
        return out
