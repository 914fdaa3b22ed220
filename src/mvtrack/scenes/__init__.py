"""Synthetic 4D multi-view scene engine: procedural scenes, a batched torch ray-caster, exact tracks.

Names load from their module on first use, so that ``mvtrack.scenes.config`` (the options the command line offers)
imports without torch."""

from mvtrack._lazy import lazy_exports

# public name -> the module that defines it
_SOURCES = {
    "SynthConfig": "config", "SyntheticDataset": "dataset", "clip_seed": "engine", "render_clips": "engine",
    "cast": "raycast", "render": "raycast", "shade": "raycast", "Scene": "scene", "sample_scene": "scene",
}
__all__ = list(_SOURCES)
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
