"""Synthetic 4D multi-view scene engine: procedural scenes, a batched torch ray-caster, exact tracks."""

from .config import SynthConfig
from .dataset import SyntheticDataset
from .engine import clip_seed, render_clips
from .raycast import cast, render, shade
from .scene import Scene, sample_scene

__all__ = ["SynthConfig", "SyntheticDataset", "Scene", "cast", "clip_seed", "render", "render_clips", "sample_scene", "shade"]
