"""The synthetic 4D multi-view engine: seeds in, batched MultiViewClips with exact tracks out."""

from __future__ import annotations

import hashlib

import torch

from mvtrack.data.clip import MultiViewClip

from .config import SPLITS, SynthConfig
from .raycast import render
from .scene import Scene, sample_scene
from .tracks import project_tracks, sample_tracks



def clip_seed(seed: int, index: int, split: str = "train") -> int:
    """The seed of clip ``index`` of a run seeded ``seed``; splits draw from disjoint hash streams."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    digest = hashlib.blake2b(f"mvtrack:{split}:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def default_chunk_rays(device) -> int:
    return 1 << 22 if torch.device(device).type == "cuda" else 1 << 18


@torch.no_grad()
def render_clips(config: SynthConfig, seeds: list[int], device="cpu", chunk_rays: int | None = None) -> MultiViewClip:
    """Render one clip per seed, batched on ``device``; each clip depends on its seed alone.

    Returns:
        A batched MultiViewClip with video (B, V, T, 3, H, W), depth, cameras, tracks (B, V, T, N, 2),
        visible, tracks3d (B, T, N, 3), queries (B, N, 4) and track_instance (B, N).
    """
    if not seeds:
        raise ValueError("render_clips: expected at least one seed")
    generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
    sampled = [sample_scene(config, g) for g in generators]
    scene = Scene.cat([s for s, _ in sampled]).to(device)
    video, depth, instance = render(scene, chunk_rays or default_chunk_rays(device))
    queries, tracks3d, track_instance = sample_tracks(scene, instance, config.num_tracks, generators, config.query_view)
    tracks, visible = project_tracks(scene, tracks3d, track_instance)
    meta = [{"seed": int(seed), **info} for seed, (_, info) in zip(seeds, sampled)]
    return MultiViewClip(
        video=video, depth=depth, w2c=scene.w2c, K=scene.K, tracks=tracks, visible=visible,
        tracks3d=tracks3d, queries=queries, track_instance=track_instance, meta=meta,
    )
