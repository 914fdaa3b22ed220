"""Torch datasets over tar shards, split across DataLoader workers and distributed ranks."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import IterableDataset, get_worker_info

from .clip import MultiViewClip
from .shards import ReadStats, iter_shard, list_shards


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
