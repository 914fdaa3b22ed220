"""Data: the MultiViewClip sample format, tar shards, datasets and track-pair sampling."""

from .clip import MultiViewClip, collate
from .datasets import ShardDataset
from .pairs import PAIR_KINDS, TrackPairs, sample_pairs
from .shards import ReadStats, ShardError, ShardWriter, decode_clip, encode_clip, iter_shard, list_shards, write_shards

__all__ = [
    "MultiViewClip", "collate", "ShardDataset", "PAIR_KINDS", "TrackPairs", "sample_pairs", "ReadStats",
    "ShardError", "ShardWriter", "decode_clip", "encode_clip", "iter_shard", "list_shards", "write_shards",
]
