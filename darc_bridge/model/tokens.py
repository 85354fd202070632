"""The STAGE-style token layout: `[mix | delimiter | drums]`, interleaved by the delay pattern.

Token `card` (2048) is audiocraft's special token, used as pad and as the null context; token
`card + 1` (2049) is the delimiter, one frame holding it in every codebook. The delay pattern runs
over the whole sequence, so pattern step s holds codebook k of frame s - 1 - k, and the model's
output at step s predicts codebook k of frame s - k.
"""

from __future__ import annotations

import torch


def build_codes(mix: torch.Tensor, drums: torch.Tensor, delimiter: int) -> torch.Tensor:
    """(B, K, Tm + 1 + Td) codes: the mix, one delimiter frame, then the drums."""
    if mix.shape[:2] != drums.shape[:2]:
        raise ValueError(f"mix codes {tuple(mix.shape)} and drum codes {tuple(drums.shape)} disagree")
    delim = torch.full_like(mix[..., :1], delimiter)
    return torch.cat([mix, delim, drums], dim=-1)


def null_context(codes: torch.Tensor, n_mix: int, pad: int) -> torch.Tensor:
    """The same codes with the mix replaced by pad tokens: the CFG null context (and context dropout)."""
    out = codes.clone()
    out[..., :n_mix] = pad
    return out


def first_drum_step(n_mix: int) -> int:
    """The pattern step whose output predicts the first drum frame's first codebook (its input is the delimiter)."""
    return n_mix + 1


def drum_mask(n_q: int, n_mix: int, n_drums: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """(K, T) True on drum frames: the only positions the loss counts."""
    mask = torch.zeros(n_q, n_mix + 1 + n_drums, dtype=torch.bool, device=device)
    mask[:, n_mix + 1:] = True
    return mask


def frames_to_steps(features: torch.Tensor, n_mix: int, n_steps: int) -> torch.Tensor:
    """Align per-drum-frame features (B, C, Td) to pattern steps: (B, n_steps, C).

    Step s carries drum frame s - (n_mix + 1), the frame whose first codebook is predicted from
    that step; steps before the delimiter's and past the last drum frame carry zeros. So nothing
    reaches the outputs that predict the mix, and each drum frame sees its own rhythm.
    """
    b, c, n_drums = features.shape
    out = features.new_zeros(b, n_steps, c)
    start = first_drum_step(n_mix)
    n = max(0, min(n_drums, n_steps - start))
    out[:, start:start + n] = features[:, :, :n].transpose(1, 2)
    return out
