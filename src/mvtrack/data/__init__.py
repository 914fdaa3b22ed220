"""Data: the MultiViewClip sample format, shards, datasets, readers of published datasets, track-pair sampling."""

from .clip import MultiViewClip, collate
from .datasets import ShardClips, ShardDataset
from .paired import PairedTracks, lift_tracks, oracle_tracks, paired_tracks, source_depth_tracks
from .pairs import PAIR_KINDS, TrackPairs, sample_pairs
from .pseudo_views import homography_pseudo_views, monocular_clip, pseudo_homographies, smooth_rotations
from .readers import (
    MultiCamVideo,
    MultiViewKubric,
    ReaderDataset,
    RealEstate10K,
    write_kubric_sequence,
    write_multicam_scene,
    write_re10k_layout,
)
from .real_tracks import (
    RealTracks,
    load_depth,
    load_tracks3d,
    reverse_and_concatenate,
    source_tracks,
    split_concatenated_tracks,
    video_tracks,
)
from .shards import ReadStats, ShardError, ShardWriter, decode_clip, encode_clip, iter_shard, list_shards, write_shards
from .source import Crop, Source, load_source, read_frames, target_cameras
from .source_geometry import SCENE_DEPTH, SourceGeometry, dense_tracks, estimate_geometry

__all__ = [
    "SCENE_DEPTH",
    "Crop",
    "Source",
    "SourceGeometry",
    "dense_tracks",
    "estimate_geometry",
    "load_source",
    "read_frames",
    "target_cameras",
    "PAIR_KINDS",
    "MultiCamVideo",
    "MultiViewClip",
    "MultiViewKubric",
    "PairedTracks",
    "ReadStats",
    "ReaderDataset",
    "RealEstate10K",
    "RealTracks",
    "ShardClips",
    "ShardDataset",
    "ShardError",
    "ShardWriter",
    "TrackPairs",
    "collate",
    "decode_clip",
    "encode_clip",
    "homography_pseudo_views",
    "iter_shard",
    "lift_tracks",
    "list_shards",
    "load_depth",
    "load_tracks3d",
    "monocular_clip",
    "oracle_tracks",
    "paired_tracks",
    "pseudo_homographies",
    "reverse_and_concatenate",
    "sample_pairs",
    "smooth_rotations",
    "source_depth_tracks",
    "source_tracks",
    "split_concatenated_tracks",
    "video_tracks",
    "write_kubric_sequence",
    "write_multicam_scene",
    "write_re10k_layout",
    "write_shards",
]
