"""Batched analytic ray-caster of synthetic scenes (device-agnostic torch).

Rays come in bundles that share a camera centre and a frame: ``origins (B, Q, 3)``, ``dirs (B, Q, P, 3)``,
``frames (B, Q)``. Directions are scaled so that their camera-frame z is 1 (``pixel_rays(normalize=False)``),
which makes every ray parameter a z-depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange

from mvtrack.geometry import pixel_grid, pixel_rays

from .scene import BOX, CYLINDER, DOME, GROUND, SPHERE, Scene
from .textures import evaluate_albedo

EPS = 1e-4  # smallest accepted ray parameter (scene units), so a surface does not occlude itself
_INF = float("inf")


@dataclass
class Hits:
    """Nearest surface along each ray: ``depth (B, Q, P)`` z-depth, ``instance (B, Q, P)`` long,
    ``local (B, Q, P, 3)`` the hit point in its instance's frame, ``normal (B, Q, P, 3)`` unit world normal."""

    depth: torch.Tensor
    instance: torch.Tensor
    local: torch.Tensor | None
    normal: torch.Tensor | None
    groups: list | None = None  # instance_groups(scene, instance), reused by shade


def _bounding_radius(kind: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Radius ``(...)`` of the smallest origin-centred sphere around each primitive."""
    box = size.norm(dim=-1)
    cyl = torch.hypot(size[..., 0], size[..., 2])
    return torch.where(kind == BOX, box, torch.where(kind == CYLINDER, cyl, size[..., 0]))


def _intersect_box(o, d, size):
    # Slab test in the box frame. o, d: (K, 3) local rays; size: (K, 3) half extents. Returns (K,).
    inv = 1.0 / d
    t1 = (-size - o) * inv
    t2 = (size - o) * inv
    tmin = torch.minimum(t1, t2).amax(-1)
    tmax = torch.maximum(t1, t2).amin(-1)
    return torch.where((tmax >= tmin) & (tmin > EPS), tmin, _INF)


def _intersect_cylinder(o, d, size):
    # Axis along local z, radius size[0], half height size[2]. o, d: (K, 3); returns (K,).
    r, h = size[:, 0], size[:, 2]
    ox, oy, oz = o.unbind(-1)
    dx, dy, dz = d.unbind(-1)
    a = dx * dx + dy * dy
    b = ox * dx + oy * dy
    c = ox * ox + oy * oy - r * r
    disc = b * b - a * c
    s_side = (-b - disc.clamp_min(0).sqrt()) / a
    side = (disc > 0) & ((oz + s_side * dz).abs() <= h) & (s_side > EPS)
    s_cap = (-torch.copysign(h, dz) - oz) / dz  # the cap facing the ray
    x, y = ox + s_cap * dx, oy + s_cap * dy
    cap = (x * x + y * y <= r * r) & (s_cap > EPS)
    return torch.minimum(torch.where(side, s_side, _INF), torch.where(cap, s_cap, _INF))


def _local_normals(kind: int, local: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Outward unit normals ``(X, 3)`` at points ``(X, 3)`` of one instance in its frame (inward for the dome)."""
    if kind == GROUND:
        return torch.tensor([0.0, 0.0, 1.0], device=local.device).expand_as(local)
    q = local / size
    if kind == SPHERE:
        n = q
    elif kind == DOME:
        n = -q
    elif kind == BOX:
        axis = q.abs().argmax(-1, keepdim=True)
        n = torch.zeros_like(q).scatter(-1, axis, q.gather(-1, axis).sign())
    else:  # CYLINDER: the cap where |z| / h beats the radial fraction, else the side
        radial = local[:, :2].norm(dim=-1, keepdim=True)
        side = torch.cat([local[:, :2], torch.zeros_like(radial)], -1)
        cap = torch.cat([torch.zeros_like(local[:, :2]), q[:, 2:].sign()], -1)
        n = torch.where(q[:, 2:].abs() > radial / size[:1], cap, side)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def instance_groups(scene: Scene, instance: torch.Tensor) -> list[tuple[int, int, int, torch.Tensor]]:
    """``(b, i, kind, flat_index)`` for every instance present in ``instance (B, ...)``."""
    flat = instance.reshape(scene.batch_size, -1)
    groups = []
    for b, shapes in enumerate(scene.shape.tolist()):
        for i, kind in enumerate(shapes):
            if kind < 0:
                continue
            idx = (flat[b] == i).nonzero()[:, 0]
            if len(idx):
                groups.append((b, i, kind, idx))
    return groups


def cast(scene: Scene, origins: torch.Tensor, dirs: torch.Tensor, frames: torch.Tensor, surface: bool = True) -> Hits:
    """Nearest hit of every ray of bundles ``origins (B, Q, 3)``, ``dirs (B, Q, P, 3)`` at ``frames (B, Q)``.

    With ``surface=False`` only depth and instance are computed (``local`` and ``normal`` are None).
    """
    B, Q, P, _ = dirs.shape
    barange = torch.arange(B, device=dirs.device)
    # 1. The sky dome (camera inside, far root) and the ground plane z = 0.
    R = scene.size[:, DOME, 0][:, None, None]
    a = (dirs * dirs).sum(-1)  # (B, Q, P)
    b = (dirs * origins[:, :, None]).sum(-1)
    c = (origins * origins).sum(-1)[:, :, None] - R * R
    depth = (-b + (b * b - a * c).clamp_min(0).sqrt()) / a  # (B, Q, P)
    instance = torch.full((B, Q, P), DOME, dtype=torch.long, device=dirs.device)
    s_ground = -origins[:, :, None, 2] / dirs[..., 2]
    closer = (s_ground > EPS) & (s_ground < depth)
    depth = torch.where(closer, s_ground, depth)
    instance = torch.where(closer, GROUND, instance)
    # 2. Objects: a dense bounding-sphere test of every (ray, object) pair, then exact tests only on the
    #    few pairs that pass it, and a scatter-min per ray (no dense (rays x objects) depth tensor).
    kind = scene.shape[:, 2:]  # (B, M)
    if kind.shape[1] and (kind >= 0).any():
        center = scene.center[barange[:, None], 2:, frames]  # (B, Q, M, 3)
        oc = origins[:, :, None] - center  # (B, Q, M, 3)
        bound = torch.where(kind >= 0, _bounding_radius(kind, scene.size[:, 2:]), 0.0)  # (B, M)
        bb = dirs @ oc.transpose(-1, -2)  # (B, Q, P, M)
        cc = ((oc * oc).sum(-1) - bound[:, None] ** 2)[:, :, None]  # (B, Q, 1, M)
        disc = bb * bb - a[..., None] * cc
        ib, iq, ip, im = (disc > 0).nonzero(as_tuple=True)  # K candidate pairs
        if len(ib):
            k = kind[ib, im]
            size = scene.size[ib, im + 2]
            a_k, bb_k, disc_k = a[ib, iq, ip], bb[ib, iq, ip, im], disc[ib, iq, ip, im]
            s_k = (-bb_k - disc_k.sqrt()) / a_k  # exact for spheres
            s_k = torch.where(s_k > EPS, s_k, _INF)
            exact = (k == BOX) | (k == CYLINDER)
            if exact.any():
                e = exact.nonzero()[:, 0]
                rot = scene.rotation[ib[e], im[e] + 2, frames[ib[e], iq[e]]]  # (E, 3, 3)
                o_l = (oc[ib[e], iq[e], im[e]][:, None, :] @ rot)[:, 0]  # R^T (o - c): (E, 3)
                d_l = (dirs[ib[e], iq[e], ip[e]][:, None, :] @ rot)[:, 0]
                s_k[e] = torch.where(
                    k[e] == BOX, _intersect_box(o_l, d_l, size[e]), _intersect_cylinder(o_l, d_l, size[e])
                )
            ray = (ib * Q + iq) * P + ip
            flat_depth = depth.reshape(-1).scatter_reduce(0, ray, s_k, "amin")
            win = (s_k == flat_depth[ray]) & torch.isfinite(s_k)
            flat_instance = instance.reshape(-1).clone()
            flat_instance[ray[win]] = im[win] + 2
            depth, instance = flat_depth.view(B, Q, P), flat_instance.view(B, Q, P)
    if not surface:
        return Hits(depth=depth, instance=instance, local=None, normal=None)
    # 3. Hit points in their instance's frame, and world normals, one instance at a time (the ground and
    #    the dome, most of the rays, need no pose).
    points = (origins[:, :, None] + depth[..., None] * dirs).reshape(B, Q * P, 3)
    local, normal = torch.empty_like(points), torch.empty_like(points)
    groups = instance_groups(scene, instance)
    for b, i, kind, idx in groups:
        p = points[b, idx]
        if kind in (DOME, GROUND):
            local[b, idx] = p
            normal[b, idx] = _local_normals(kind, p, scene.size[b, i])
            continue
        f = frames[b, idx // P]
        rot, center = scene.rotation[b, i, f], scene.center[b, i, f]  # (S, 3, 3), (S, 3)
        lp = ((p - center)[:, :, None] * rot).sum(1)  # R^T (p - c)
        local[b, idx] = lp
        normal[b, idx] = (rot * _local_normals(kind, lp, scene.size[b, i])[:, None, :]).sum(-1)
    return Hits(depth=depth, instance=instance, local=local.view(B, Q, P, 3), normal=normal.view(B, Q, P, 3),
                groups=groups)


def shade(scene: Scene, instance: torch.Tensor, local: torch.Tensor, normal: torch.Tensor, groups=None) -> torch.Tensor:
    """Lambertian colour ``(B, ..., 3)`` in [0, 1] of surface points ``(B, ...)``; the dome is unlit (emissive).

    ``groups`` is ``instance_groups(scene, instance)`` when the caller has it already.
    """
    B = scene.batch_size
    albedo = torch.zeros_like(local).reshape(B, -1, 3)
    flat = local.reshape(B, -1, 3)
    for b, i, _, idx in groups if groups is not None else instance_groups(scene, instance):
        albedo[b, idx] = evaluate_albedo(scene.textures, b, i, flat[b, idx])
    albedo = albedo.reshape_as(local)
    light = scene.light.reshape(B, *([1] * (instance.dim() - 1)), 3)
    ambient = scene.ambient.reshape(B, *([1] * (instance.dim() - 1)), 1)
    lambert = (normal * light).sum(-1, keepdim=True).clamp_min(0)
    factor = torch.where((instance == DOME)[..., None], torch.ones_like(lambert), ambient + (1 - ambient) * lambert)
    return (albedo * factor).clamp(0, 1)


def render(scene: Scene, chunk_rays: int = 1 << 18):
    """Render every camera and frame of a scene batch.

    Args:
        scene: a batch of B scenes with V cameras and T frames.
        chunk_rays: rays cast at once (memory scales with it; larger is faster on GPU).

    Returns:
        rgb: (B, V, T, 3, H, W) in [0, 1]; depth: (B, V, T, H, W) z-depth; instance: (B, V, T, H, W) uint8.
    """
    B, V, T = scene.w2c.shape[:3]
    H, W = scene.height, scene.width
    P = H * W
    xy = pixel_grid(H, W, device=scene.device).reshape(P, 2)
    w2c = scene.w2c.reshape(B, V * T, 4, 4)
    K = scene.K.reshape(B, V * T, 3, 3)
    frames = torch.arange(V * T, device=scene.device) % T
    rgb = torch.empty(B, V * T, P, 3, device=scene.device)
    depth = torch.empty(B, V * T, P, device=scene.device)
    instance = torch.empty(B, V * T, P, dtype=torch.uint8, device=scene.device)
    step = max(1, chunk_rays // (B * P))
    for q0 in range(0, V * T, step):
        q = slice(q0, min(q0 + step, V * T))
        origins, dirs = pixel_rays(xy, w2c[:, q], K[:, q], normalize=False)  # (B, Qc, 3), (B, Qc, P, 3)
        hits = cast(scene, origins, dirs, frames[q].expand(B, -1))
        rgb[:, q] = shade(scene, hits.instance, hits.local, hits.normal, hits.groups)
        depth[:, q] = hits.depth
        instance[:, q] = hits.instance.to(torch.uint8)
    rgb = rearrange(rgb, "b (v t) (h w) c -> b v t c h w", v=V, h=H)
    depth = rearrange(depth, "b (v t) (h w) -> b v t h w", v=V, h=H)
    instance = rearrange(instance, "b (v t) (h w) -> b v t h w", v=V, h=H)
    return rgb, depth, instance
