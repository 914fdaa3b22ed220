"""Torch datasets over tar shards: a stream split across DataLoader workers and distributed ranks
(``ShardDataset``), and random access to any clip by its index (``ShardClips``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .clip import MultiViewClip
from .latents import LatentClip
from .shards import ReadStats, SampleRef, index_shard, iter_shard, list_shards, read_sample


def worker_split() -> tuple[int, int]:
    """(index, count) of this reader among all ranks and DataLoader workers."""
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    return rank * workers + worker, world * workers


class ShardDataset(IterableDataset):
    """Clips from WebDataset-compatible tar shards; each rank and worker reads its own shards.

    Args:
        source: a directory, glob pattern, .tar path or list of them.
        shuffle: shuffle the shard order each epoch (seeded by ``seed`` and the epoch).
        seed: seed of the shuffle.
    """

    def __init__(self, source: str | Path | list, shuffle: bool = True, seed: int = 0):
        self.shards = list_shards(source)
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = 0
        self.stats = ReadStats()  # counts of this process; each worker process keeps its own

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[MultiViewClip]:
        shards = list(self.shards)
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            shards = [shards[i] for i in torch.randperm(len(shards), generator=g).tolist()]
        index, count = worker_split()
        if len(shards) < count:
            warnings.warn(f"{len(shards)} shards for {count} readers: some readers get none; write more shards",
                          stacklevel=2)
        for path in shards[index::count]:
            yield from iter_shard(path, self.stats)


class ShardClips(Dataset):
    """Random access to the clips of tar shards: clip ``i`` is the ``i``-th complete sample of the shards in sorted
    order. The index is built from the tar headers alone (no member is read or decoded), so a reader that needs clips
    ``[i, j, ...]`` — one rank's share, one DataLoader worker's batch — reads only their bytes.

    The index and the reads are ``iter_shard``'s own (``shards.index_shard``, ``shards.read_sample``): a truncated or
    unreadable shard keeps the samples before the damage, a sample with a member over ``MAX_MEMBER_BYTES`` is left
    out of the index, and ``read`` raises ``ShardError`` for a sample that does not decode (found only when read).
    ``stats`` counts what indexing saw.

    Args:
        source: a directory, glob pattern, .tar path or list of them (``list_shards``).
    """

    def __init__(self, source: str | Path | list):
        self.source = source
        self.shards = list_shards(source)
        self.samples: list[SampleRef] = []
        self.stats = ReadStats()
        for i, path in enumerate(self.shards):
            self.samples += index_shard(path, self.stats, i)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> MultiViewClip | LatentClip:
        """Clip ``index``, unbatched; ``ShardError`` naming the shard and sample when it does not decode."""
        ref = self.samples[index]
        return read_sample(self.shards[ref.shard], ref)

    __getitem__ = read
