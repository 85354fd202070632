"""Jump fine-tuning (MusiConGen): freeze the pretrained LM, train every n-th layer and what is new.

Trainable: every `every`-th transformer layer (index % every == 0: the whole layer, or only its
self-attention), the rhythm/beat projections, the delimiter rows, the output norm and the heads.
MusicGen's text cross-attention stays frozen: DARC never feeds it, so it gets no gradient anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from torch import nn

from darc_bridge.model.lm import DarcLM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainableReport:
    """What jump fine-tuning left trainable, for logs and the training report."""

    trainable: int
    total: int
    layers: tuple[int, ...]
    mode: str

    @property
    def fraction(self) -> float:
        return self.trainable / max(self.total, 1)

    def __str__(self) -> str:
        return (f"{self.trainable / 1e6:.1f}M of {self.total / 1e6:.1f}M parameters trainable "
                f"({100 * self.fraction:.1f}%), layers {list(self.layers)} ({self.mode})")


def _layer_params(layer: nn.Module, mode: str) -> list[nn.Parameter]:
    if mode == "self_attn":
        return list(layer.self_attn.parameters())
    return [p for name, p in layer.named_parameters() if "cross" not in name]


def apply_jump_finetune(model: DarcLM, every: int | None = None, mode: str | None = None) -> TrainableReport:
    """Freeze `model`, unfreeze the jump layers and the new parts; return the trainable count."""
    every = model.config.jump_every if every is None else every
    mode = model.config.jump_mode if mode is None else mode
    if every < 1:
        raise ValueError(f"jump interval must be at least 1, got {every}")
    if mode not in ("layer", "self_attn"):
        raise ValueError(f"jump mode must be 'layer' or 'self_attn', got {mode!r}")
    model.requires_grad_(False)
    layers = tuple(i for i in range(len(model.lm.transformer.layers)) if i % every == 0)
    trainable: list[nn.Parameter] = [model.delimiter, *model.conditioner.parameters(), *model.lm.linears.parameters()]
    if model.lm.out_norm is not None:
        trainable.extend(model.lm.out_norm.parameters())
    for i in layers:
        trainable.extend(_layer_params(model.lm.transformer.layers[i], mode))
    for p in trainable:
        p.requires_grad_(True)
    report = TrainableReport(
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        total=sum(p.numel() for p in model.parameters()),
        layers=layers,
        mode=mode,
    )
    log.info("jump fine-tuning: %s", report)
    return report
