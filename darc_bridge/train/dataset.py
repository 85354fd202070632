"""Reading a token cache without loading it whole: shards are memory-mapped on demand, at most a
few at a time, so memory stays bounded by `open_shards` shards whatever the dataset's size.

An epoch's order is built from the index alone (shard, row), never from the data: the shards are
shuffled, taken in blocks of `open_shards`, and the rows of each block shuffled together (the
shuffle buffer of streaming loaders). A pass over the order therefore opens every shard once,
and never needs more than one block resident. Under DDP every rank takes every `world`-th entry of
the same order, so the ranks see disjoint samples within an epoch, from the same block at once.
The order is a function of (seed, epoch) and a batch of the position in it, so a resumed run
reads the batches an uninterrupted one would have.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from darc_bridge.errors import InputError
from darc_bridge.train.cache import read_manifest

log = logging.getLogger(__name__)

DEFAULT_OPEN_SHARDS = 8  # 256-segment shards of 10 s: about 3 MB each with MusicGen-small's codec


class Sample(NamedTuple):
    """One cached segment as stored: int16 codes, float16 features (views of a memory-mapped shard)."""

    key: str
    mix: torch.Tensor  # (K, T)
    drums: torch.Tensor  # (K, T)
    rhythm: torch.Tensor  # (C, T)
    beat: torch.Tensor | None  # (2, T) when the cache holds beat features


class Batch(NamedTuple):
    """A training batch cropped to one length: long codes, float features."""

    mix: torch.Tensor  # (B, K, L)
    drums: torch.Tensor  # (B, K, L)
    rhythm: torch.Tensor  # (B, C, L)
    beat: torch.Tensor | None  # (B, 2, L)


class ShardReader:
    """Memory-maps shards on demand, keeping at most `max_open` (least recently used goes first).

    `loads` counts shard openings and `peak_open` the most held at once, so tests and logs can
    see that an epoch opens each shard once and memory never holds more than `max_open`.
    """

    def __init__(self, folder: Path, files: list[str], max_open: int = DEFAULT_OPEN_SHARDS) -> None:
        if max_open < 1:
            raise InputError(f"at least one shard must be open at a time, got {max_open}")
        self.folder = folder
        self.files = files
        self.max_open = max_open
        self._open: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self.loads = 0
        self.peak_open = 0

    @property
    def open_shards(self) -> list[int]:
        return list(self._open)

    def shard(self, i: int) -> dict[str, Any]:
        if i in self._open:
            self._open.move_to_end(i)
            return self._open[i]
        while len(self._open) >= self.max_open:
            self._open.popitem(last=False)
        path = self.folder / self.files[i]
        try:
            data = torch.load(path, mmap=True, weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise InputError(f"cannot read token cache shard {path}: {exc}") from exc
        self._open[i] = data
        self.loads += 1
        self.peak_open = max(self.peak_open, len(self._open))
        return data

    def close(self) -> None:
        self._open.clear()


class TokenCache:
    """A built token cache, read lazily: an index of (shard, row) and an LRU of open shards."""

    def __init__(self, cache_dir: str | Path, open_shards: int = DEFAULT_OPEN_SHARDS) -> None:
        self.path = Path(cache_dir)
        self.manifest = read_manifest(self.path)
        if not self.manifest.get("complete"):
            raise InputError(f"token cache {self.path} is unfinished: run the cache build again to resume it")
        shards = self.manifest["shards"]
        counts = np.array([int(s["segments"]) for s in shards], dtype=np.int64)
        if counts.sum() == 0:
            raise InputError(f"token cache {self.path} holds no segments")
        self.shard_of = np.repeat(np.arange(len(shards)), counts)
        self.first_of_shard = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.row_of = np.arange(len(self.shard_of)) - self.first_of_shard[self.shard_of]
        self.counts = counts
        self.open_shards = open_shards
        self.reader = ShardReader(self.path, [s["file"] for s in shards], open_shards)
        self._orders: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.shard_of)

    @property
    def n_shards(self) -> int:
        return len(self.reader.files)

    @property
    def frame_rate(self) -> float:
        return float(self.manifest["frame_rate"])

    @property
    def has_beat(self) -> bool:
        return bool(self.manifest.get("beat", False))

    def __getitem__(self, i: int) -> Sample:
        data = self.reader.shard(int(self.shard_of[i]))
        r = int(self.row_of[i])
        beat = data["beat"][r] if self.has_beat else None
        return Sample(data["keys"][r], data["mix"][r], data["drums"][r], data["rhythm"][r], beat)

    def keys(self) -> list[str]:
        """Every key in index order (reads each shard once)."""
        return [self[i].key for i in range(len(self))]

    def epoch_order(self, epoch: int, seed: int = 0, rank: int = 0, world: int = 1) -> np.ndarray:
        """Sample indices of one epoch for one rank (see the module docstring)."""
        key = (seed, epoch)
        if key not in self._orders:
            rng = np.random.default_rng([seed, epoch])
            shards = rng.permutation(self.n_shards)
            parts = []
            for b in range(0, len(shards), self.open_shards):
                rows = [np.arange(self.counts[s]) + self.first_of_shard[s] for s in shards[b:b + self.open_shards]]
                parts.append(rng.permutation(np.concatenate(rows)))
            # two epochs kept (a batch may straddle the boundary); an order costs 8 bytes per segment
            self._orders = {k: o for k, o in self._orders.items() if k == (seed, epoch - 1)}
            self._orders[key] = np.concatenate(parts)
        self.per_rank(rank, world)
        return self._orders[key][rank::world]

    def per_rank(self, rank: int = 0, world: int = 1) -> int:
        """Samples one rank sees per epoch (the ranks' counts differ by at most one)."""
        if len(self) < world:  # checked on every rank alike, so none is left waiting for the others
            raise InputError(f"token cache {self.path} has {len(self)} segments, fewer than the {world} processes")
        return len(range(rank, len(self), world))

    def indices_at(self, position: int, count: int, seed: int = 0, rank: int = 0, world: int = 1) -> np.ndarray:
        """`count` indices from `position` on in this rank's endless sequence of epochs."""
        per_epoch = self.per_rank(rank, world)
        out = []
        for q in range(position, position + count):
            out.append(self.epoch_order(q // per_epoch, seed, rank, world)[q % per_epoch])
        return np.array(out, dtype=np.int64)

    def crop(self, idx: np.ndarray, rng: np.random.Generator, min_frames: int, max_frames: int) -> Batch:
        """The samples `idx` cropped to one random length in [min_frames, max_frames] (see segments.py)."""
        samples = [self[int(i)] for i in idx]
        shortest = min(s.drums.shape[-1] for s in samples)
        hi = min(max_frames, shortest)
        length = int(rng.integers(min(min_frames, hi), hi + 1))
        mix, drums, rhythm, beat = [], [], [], []
        for s in samples:
            start = int(rng.integers(0, s.drums.shape[-1] - length + 1))
            cut = slice(start, start + length)
            mix.append(s.mix[:, cut])
            drums.append(s.drums[:, cut])
            rhythm.append(s.rhythm[:, cut])
            if s.beat is not None:
                beat.append(s.beat[:, cut])
        return Batch(torch.stack(mix).long(), torch.stack(drums).long(), torch.stack(rhythm).float(),
                     torch.stack(beat).float() if beat else None)

    def batch_at(self, position: int, batch_size: int, rng: np.random.Generator, min_frames: int, max_frames: int,
                 seed: int = 0, rank: int = 0, world: int = 1) -> Batch:
        """The batch at `position` of this rank's epoch sequence: what the training loop reads."""
        return self.crop(self.indices_at(position, batch_size, seed, rank, world), rng, min_frames, max_frames)

    def batch(self, rng: np.random.Generator, batch_size: int, min_frames: int, max_frames: int) -> Batch:
        """A batch of samples drawn at random with replacement (opens shards in no particular order)."""
        return self.crop(rng.integers(0, len(self), size=batch_size), rng, min_frames, max_frames)
