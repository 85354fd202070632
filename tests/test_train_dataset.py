"""Streaming the token cache: an epoch reads every sample once, opens each shard once, holds at
most `open_shards` shards, and DDP ranks read disjoint samples. The shards are written here in the
cache's format with made-up tokens (no audio), so many small shards cost nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from darc_bridge.errors import InputError
from darc_bridge.train.cache import FORMAT, VERSION
from darc_bridge.train.dataset import TokenCache

SIZES = [3, 1, 5, 2, 4, 2, 3]  # segments per shard: uneven, as the last shard of a build is


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("streamcache")
    rng = np.random.default_rng(0)
    shards = []
    n = 0
    for s, size in enumerate(SIZES):
        payload: dict[str, list] = {"keys": [], "mix": [], "drums": [], "rhythm": [], "beat": []}
        for _ in range(size):
            frames = int(rng.integers(40, 60))
            payload["keys"].append(f"seg{n}")
            payload["mix"].append(torch.full((4, frames), n, dtype=torch.int16))
            payload["drums"].append(torch.from_numpy(rng.integers(0, 2048, (4, frames))).to(torch.int16))
            payload["rhythm"].append(torch.from_numpy(rng.random((3, frames))).to(torch.float16))
            payload["beat"].append(torch.from_numpy(rng.random((2, frames))).to(torch.float16))
            n += 1
        torch.save(payload, root / f"shard_{s:05d}.pt")
        shards.append({"file": f"shard_{s:05d}.pt", "segments": size})
    manifest = {"format": FORMAT, "version": VERSION, "codec": "x", "frame_rate": 50.0, "n_q": 4, "beat": True,
                "shards": shards, "songs_done": [], "complete": True}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_an_epoch_reads_every_sample_once_holding_at_most_the_open_limit(cache):
    data = TokenCache(cache, open_shards=2)
    n = sum(SIZES)
    seen = []
    for position in range(0, n, 3):  # the training loop's reads: consecutive positions, batch by batch
        batch = data.batch_at(position, min(3, n - position), np.random.default_rng(position), 40, 40)
        assert len(data.reader.open_shards) <= 2
        seen += [int(row[0, 0]) for row in batch.mix]  # each sample's mix holds its own number
        assert batch.beat is not None and batch.beat.shape == (batch.mix.shape[0], 2, 40)
    assert sorted(seen) == list(range(n))
    assert data.reader.loads == len(SIZES) and data.reader.peak_open == 2  # each shard opened once


def test_epochs_are_shuffled_and_reproducible(cache):
    data = TokenCache(cache, open_shards=3)
    first, second = data.epoch_order(0, seed=1), data.epoch_order(1, seed=1)
    assert sorted(first) == sorted(second) == list(range(sum(SIZES)))
    assert not np.array_equal(first, second)
    assert np.array_equal(TokenCache(cache, open_shards=3).epoch_order(1, seed=1), second)
    assert not np.array_equal(data.epoch_order(0, seed=2), first)
    # positions past the end continue in the next epoch's order
    n = sum(SIZES)
    assert np.array_equal(data.indices_at(n - 2, 4, seed=1), np.concatenate([first[-2:], second[:2]]))


def test_ranks_read_disjoint_samples_that_cover_the_epoch(cache):
    n = sum(SIZES)
    parts = []
    for rank in range(3):
        data = TokenCache(cache, open_shards=2)
        order = data.indices_at(0, data.per_rank(rank, 3), seed=0, rank=rank, world=3)
        for i in order:
            data[int(i)]
            assert len(data.reader.open_shards) <= 2
        assert data.reader.loads <= len(SIZES)
        parts.append(set(order.tolist()))
    assert sum(len(p) for p in parts) == n and set().union(*parts) == set(range(n))
    with pytest.raises(InputError, match="fewer than the 40 processes"):
        TokenCache(cache).epoch_order(0, rank=0, world=40)


def test_random_batches_stay_within_the_open_limit(cache):
    data = TokenCache(cache, open_shards=1)
    rng = np.random.default_rng(0)
    for _ in range(10):
        data.batch(rng, 4, 30, 40)
        assert len(data.reader.open_shards) == 1
    assert data.reader.peak_open == 1
