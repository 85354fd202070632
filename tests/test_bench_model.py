"""The model benchmark's comparison case: our generation loop against audiocraft's LMModel.generate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from darc_bridge.bench.model import _null_condition, compare_case


@pytest.fixture
def restore_threads() -> Iterator[None]:
    """compare_case pins torch to one thread (meant for its own bench process); undo it here."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_compare_case_times_both_sides_on_the_same_work(restore_threads: None) -> None:
    result = compare_case("tiny", 0.2, "cpu", repeats=1)
    assert result["frames"] == 10
    assert result["ours_frames"] == result["audiocraft_frames"] == 10
    assert result["ours_fps"] > 0 and result["audiocraft_fps"] > 0 and result["ours_rhythm_fps"] > 0
    assert result["ratio"] == pytest.approx(result["ours_fps"] / result["audiocraft_fps"])
    # classifier-free guidance really ran on both sides: two batch rows through the transformer
    assert result["ours_rows"] == result["audiocraft_rows"] == 2
    assert result["steps"] == 10 + 4 - 1


def test_null_condition_is_removed_afterwards() -> None:
    from darc_bridge.model.checkpoint import random_checkpoint

    lm = random_checkpoint("tiny").model.lm
    provider, fused = lm.condition_provider, dict(lm.fuser.cond2fuse)
    with _null_condition(lm, cross_attention=False) as conditions:
        assert len(conditions) == 1
        assert lm.condition_provider is not provider
        tensors = lm.condition_provider(lm.condition_provider.tokenize(conditions * 2))
        (cond, mask), = tensors.values()
        assert cond.shape == (2, 1, lm.dim) and not cond.any() and mask.all()
    assert lm.condition_provider is provider
    assert dict(lm.fuser.cond2fuse) == fused


@pytest.mark.slow
def test_batch_case_times_batched_and_sequential_jobs(restore_threads: None) -> None:
    from darc_bridge.bench.model import batch_case

    result = batch_case(2, 0.5, "cpu")
    assert result["jobs"] == 2 and result["job_s"] == 0.5
    assert result["seconds"] > 0 and result["sequential_s"] > 0
    assert result["speedup"] == pytest.approx(result["sequential_s"] / result["seconds"])
    assert 0 <= result["same_as_alone"] <= 2


def test_train_step_case_times_the_sdpa_and_einsum_branches_on_one_computation(restore_threads: None) -> None:
    from darc_bridge.bench.model import train_step_case
    from darc_bridge.model import lm as lm_module

    layer = lm_module._layer
    result = train_step_case("tiny", 20, "cpu", repeats=1, batch=2)
    assert lm_module._layer is layer  # the reference branch is swapped in for its steps only
    assert result["seconds"] > 0 and result["einsum_seconds"] > 0 and result["rows"] == 2
    assert result["ratio"] == pytest.approx(result["einsum_seconds"] / result["seconds"])
    assert result["loss_gap"] < 1e-4  # the same loss: float error only
