"""Readers of published multi-view and camera datasets, each from its own layout, into ``MultiViewClip``s."""

from .base import ReaderDataset, crop_resize, frame_indices, read_video_frames
from .export import write_kubric_sequence, write_multicam_scene, write_re10k_layout
from .kubric import MultiViewKubric
from .multicam import MultiCamVideo
from .re10k import RealEstate10K

__all__ = [
    "MultiCamVideo",
    "MultiViewKubric",
    "ReaderDataset",
    "RealEstate10K",
    "crop_resize",
    "frame_indices",
    "read_video_frames",
    "write_kubric_sequence",
    "write_multicam_scene",
    "write_re10k_layout",
]
