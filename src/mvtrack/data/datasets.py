"""Torch datasets over tar shards: a stream split across DataLoader workers and distributed ranks
(``ShardDataset``), and random access to any clip by its index (``ShardClips``)."""

from __future__ import annotations

import os
import tarfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .clip import MultiViewClip
from .latents import LatentClip
from .shards import MAX_MEMBER_BYTES, ReadStats, ShardError, decode_clip, iter_shard, list_shards


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


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's members lie in its shard: ``(suffix, byte offset, size)`` of each, the JSON last."""

    shard: int  # index into ``ShardClips.shards``
    key: str
    members: tuple[tuple[str, int, int], ...]


class ShardClips(Dataset):
    """Random access to the clips of tar shards: clip ``i`` is the ``i``-th complete sample of the shards in sorted
    order. The index is built from the tar headers alone (no member is read or decoded), so a reader that needs clips
    ``[i, j, ...]`` — one rank's share, one DataLoader worker's batch — reads only their bytes.

    A truncated or unreadable shard keeps the samples before the damage (as ``iter_shard``); a sample with a member
    over ``MAX_MEMBER_BYTES`` is left out of the index. ``read`` raises ``ShardError`` for a sample that does not
    decode (found only when read). ``stats`` counts what indexing saw.

    Args:
        source: a directory, glob pattern, .tar path or list of them (``list_shards``).
    """

    def __init__(self, source: str | Path | list):
        self.source = source
        self.shards = list_shards(source)
        self.samples: list[SampleRef] = []
        self.stats = ReadStats()
        for i, path in enumerate(self.shards):
            self._index(i, path)

    def _index(self, shard: int, path: Path) -> None:
        self.stats.shards += 1
        size = os.path.getsize(path)
        members: list[tuple[str, int, int]] = []
        key, oversized, kept = None, False, 0
        try:
            with tarfile.open(path, "r:") as tar:  # headers only: the data of each member is seeked over
                for info in tar:
                    if not info.isfile():
                        continue
                    if info.offset_data + info.size > size:
                        raise EOFError(f"member {info.name} ends past the end of the file")
                    name_key, _, suffix = info.name.partition(".")
                    if name_key != key:
                        members, key, oversized = [], name_key, False
                    oversized |= info.size > MAX_MEMBER_BYTES
                    members.append((suffix, info.offset_data, info.size))
                    if suffix == "json":
                        if oversized:
                            self.stats.skipped_samples += 1
                            warnings.warn(f"skipping sample {key} of {path}: a member is larger than "
                                          f"{MAX_MEMBER_BYTES / 2**30:.0f} GiB", stacklevel=3)
                        else:
                            self.samples.append(SampleRef(shard, key, tuple(members)))
                            kept += 1
                        members, key = [], None
        except (tarfile.TarError, EOFError, OSError) as e:
            self.stats.corrupt_shards += 1
            warnings.warn(f"shard {path} is truncated or corrupt ({e}); kept its {kept} complete clips, "
                          f"skipped the rest", stacklevel=3)
            return
        if members:
            self.stats.corrupt_shards += 1
            warnings.warn(f"shard {path} is truncated or corrupt (sample {key} has no json member); kept its {kept} "
                          f"complete clips, skipped the rest", stacklevel=3)

    def __len__(self) -> int:
        return len(self.samples)

    def read(self, index: int) -> MultiViewClip | LatentClip:
        """Clip ``index``, unbatched; ``ShardError`` naming the shard and sample when it does not decode."""
        ref = self.samples[index]
        path = self.shards[ref.shard]
        payloads = {}
        try:
            with open(path, "rb") as f:
                for suffix, offset, size in ref.members:
                    f.seek(offset)
                    payloads[suffix] = f.read(size)
                    if len(payloads[suffix]) != size:
                        raise ShardError(f"{path}: sample {ref.key}: member {suffix} is cut short (the shard changed "
                                         "after it was indexed)")
        except OSError as e:
            raise ShardError(f"{path}: sample {ref.key} cannot be read ({e})") from None
        return decode_clip(payloads, where=f"{path}: sample {ref.key}")

    __getitem__ = read
