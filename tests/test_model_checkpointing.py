"""Activation checkpointing (issue 10): the rhythm is an argument of each layer call, so a layer
recomputed in the backward pass sees the same conditioning and the gradients are the same.

(With the old forward pre-hook, the conditioning was cleared before backward: recomputed layers
lost the rhythm and gradients differed by up to 23 %.)
"""

from __future__ import annotations

import pytest
import torch

from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import TRANSFORMER_DEFAULTS, preset

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _grads(checkpointing: str, batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = DarcLM(preset("tiny", transformer={**TRANSFORMER_DEFAULTS, "checkpointing": checkpointing}))
    model.train()
    mix, drums, rhythm = batch
    loss = model.loss(mix, drums, rhythm, rhythm_on=torch.tensor([1.0, 1.0, 0.0]))
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointed_gradients_equal_plain_gradients():
    g = torch.Generator().manual_seed(3)
    batch = (torch.randint(0, 2048, (3, 4, 12), generator=g), torch.randint(0, 2048, (3, 4, 10), generator=g),
             torch.rand(3, 3, 10, generator=g))
    loss_plain, plain = _grads("none", batch)
    loss_ckpt, ckpt = _grads("torch", batch)
    assert torch.equal(loss_plain, loss_ckpt)
    assert plain.keys() == ckpt.keys()
    # the rhythm reaches the loss through the in-attention layers, which are checkpointed
    assert plain["conditioner.rhythm_proj.weight"].abs().sum() > 0
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)


def test_checkpointing_is_only_used_while_training():
    torch.manual_seed(0)
    model = DarcLM(preset("tiny", transformer={**TRANSFORMER_DEFAULTS, "checkpointing": "torch"})).eval()
    seq = torch.randint(0, 2048, (1, 4, 9))
    with torch.no_grad():
        a = model(seq)
    model.train()
    with torch.no_grad():
        b = model(seq)
    assert torch.equal(a, b)
