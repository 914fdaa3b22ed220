"""Exact multi-view point tracks of synthetic scenes.

Queries are drawn from rendered pixels (half on objects, half on the ground and sky), lifted to their
surface by casting the query ray, and carried rigidly with their instance through every frame. A track is
visible in a view and frame when it lies in front of the camera, inside the image, and the ray through
its exact projection first hits the same instance at the same depth.
"""

from __future__ import annotations

import torch
from einops import rearrange

from mvtrack.geometry import pixel_rays, project

from .raycast import cast
from .scene import Scene

DEPTH_RTOL = 1e-3  # relative depth agreement of a visible point with the surface its ray hits


def sample_queries(
    instance: torch.Tensor, num_tracks: int, generators: list[torch.Generator], view: int | None = None
) -> torch.Tensor:
    """Query points ``(B, N, 4)`` as (v, t, x, y), half on objects (instance >= 2) and half on the background.

    Args:
        instance: (B, V, T, H, W) instance maps of the rendered clips.
        num_tracks: N.
        generators: one CPU generator per clip; all randomness comes from them.
        view: draw from this view only (None: from every view).
    """
    B, V, T, H, W = instance.shape
    out = []
    for b in range(B):
        flat = (instance[b] if view is None else instance[b, view : view + 1]).reshape(-1)
        obj = (flat >= 2).nonzero()[:, 0]
        bg = (flat < 2).nonzero()[:, 0]
        n_obj = num_tracks // 2 if len(obj) else 0
        if not len(bg):  # a view filled by objects (a room's walls and furniture): all from them
            n_obj = num_tracks
        picks = []
        for pool, n in ((obj, n_obj), (bg, num_tracks - n_obj)):
            if n == 0:
                continue
            u = torch.rand(n, generator=generators[b])
            picks.append(pool[(u * len(pool)).long().clamp(max=len(pool) - 1).to(pool.device)])
        # Shuffled, so that any prefix of the tracks is balanced too.
        idx = torch.cat(picks)[torch.randperm(num_tracks, generator=generators[b]).to(instance.device)]
        v, rest = idx // (T * H * W), idx % (T * H * W)
        if view is not None:
            v = torch.full_like(v, view)
        t, rest = rest // (H * W), rest % (H * W)
        y, x = rest // W, rest % W
        jitter = (torch.rand(num_tracks, 2, generator=generators[b]) - 0.5).to(instance.device)
        out.append(torch.stack([v.float(), t.float(), x + jitter[:, 0], y + jitter[:, 1]], -1))
    return torch.stack(out)


def lift_queries(scene: Scene, queries: torch.Tensor):
    """World tracks of query points.

    Args:
        queries: (B, N, 4) as (v, t, x, y).

    Returns:
        tracks3d: (B, T, N, 3) world positions of each query's surface point at every frame.
        instance: (B, N) long, the surface each query lies on.
    """
    B, N, _ = queries.shape
    barange = torch.arange(B, device=queries.device)[:, None]
    v, t = queries[..., 0].long(), queries[..., 1].long()
    w2c, K = scene.w2c[barange, v, t], scene.K[barange, v, t]  # (B, N, 4, 4), (B, N, 3, 3)
    origins, dirs = pixel_rays(queries[..., None, 2:], w2c, K, normalize=False)  # (B, N, 3), (B, N, 1, 3)
    hits = cast(scene, origins, dirs, t)
    instance, local = hits.instance[..., 0], hits.local[..., 0, :]  # (B, N), (B, N, 3)
    rot = scene.rotation[barange, instance]  # (B, N, T, 3, 3)
    ctr = scene.center[barange, instance]  # (B, N, T, 3)
    world = (rot @ local[:, :, None, :, None])[..., 0] + ctr  # (B, N, T, 3)
    return rearrange(world, "b n t c -> b t n c"), instance


def sample_tracks(
    scene: Scene, instance: torch.Tensor, num_tracks: int, generators: list[torch.Generator], view: int | None = None
):
    """Draw balanced queries and lift them: ``queries (B, N, 4)``, ``tracks3d (B, T, N, 3)``, ``instance (B, N)``.

    A query jittered inside its pixel can fall off the surface it was drawn on (at a silhouette); such
    queries go back to their pixel centre, whose surface the render fixed, so the balance stays exact.
    """
    queries = sample_queries(instance, num_tracks, generators, view)
    tracks3d, track_instance = lift_queries(scene, queries)
    barange = torch.arange(scene.batch_size, device=queries.device)[:, None]
    q = queries.long()
    # jitter is in [-0.5, 0.5): this is the sampled pixel (clamped: x + jitter + 0.5 can round up to W in float32)
    H, W = instance.shape[-2:]
    centre = (queries[..., 2:] + 0.5).floor()
    centre = torch.stack([centre[..., 0].clamp(0, W - 1), centre[..., 1].clamp(0, H - 1)], -1)
    wanted = instance[barange, q[..., 0], q[..., 1], centre[..., 1].long(), centre[..., 0].long()] >= 2
    moved = wanted != (track_instance >= 2)
    if moved.any():
        queries[..., 2:] = torch.where(moved[..., None], centre, queries[..., 2:])
        tracks3d, track_instance = lift_queries(scene, queries)
    return queries, tracks3d, track_instance


def project_tracks(scene: Scene, tracks3d: torch.Tensor, instance: torch.Tensor):
    """Per-view 2D tracks and visibility by exact depth test.

    Args:
        tracks3d: (B, T, N, 3) world positions; instance: (B, N) surface of each track.

    Returns:
        tracks: (B, V, T, N, 2) pixels; visible: (B, V, T, N) bool.
    """
    B, V, T = scene.w2c.shape[:3]
    N = tracks3d.shape[2]
    xy, z = project(tracks3d[:, None], scene.w2c, scene.K)  # (B, V, T, N, 2), (B, V, T, N)
    H, W = scene.height, scene.width
    inside = (z > 1e-3) & (xy[..., 0] >= -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < H - 0.5)
    safe = torch.where(inside[..., None], xy, torch.zeros_like(xy))
    origins, dirs = pixel_rays(
        safe.reshape(B, V * T, N, 2), scene.w2c.reshape(B, V * T, 4, 4), scene.K.reshape(B, V * T, 3, 3), normalize=False
    )
    frames = (torch.arange(V * T, device=xy.device) % T).expand(B, -1)
    hits = cast(scene, origins, dirs, frames, surface=False)
    hit_depth = hits.depth.reshape(B, V, T, N)
    same = hits.instance.reshape(B, V, T, N) == instance[:, None, None, :]
    visible = inside & same & ((hit_depth - z).abs() <= DEPTH_RTOL * z)
    return xy, visible
