"""Camera rays through pixel centres and their Plücker embedding (the camera condition of every model)."""

from __future__ import annotations

import torch
from einops import rearrange

from .projection import pixel_grid


def pixel_rays(xy: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, normalize: bool = True):
    """World-space rays through pixel coordinates.

    Args:
        xy: (..., P, 2) pixel coordinates (top-left pixel centre at (0, 0)).
        w2c: (..., 4, 4) world-to-camera; K: (..., 3, 3) pixel intrinsics.
        normalize: unit directions if True; otherwise directions whose camera-frame z is 1, so that
            ``origin + s * direction`` lies at z-depth ``s``.

    Returns:
        origins: (..., 3) camera centres; directions: (..., P, 3).
    """
    R = w2c[..., :3, :3]
    t = w2c[..., :3, 3:]
    origins = (-R.transpose(-1, -2) @ t)[..., 0]
    cam = torch.cat([xy, torch.ones_like(xy[..., :1])], -1) @ torch.linalg.inv(K).transpose(-1, -2)  # (..., P, 3)
    if normalize:
        cam = cam / cam.norm(dim=-1, keepdim=True)
    return origins, cam @ R  # R^T d in row-vector form


def plucker_rays(w2c: torch.Tensor, K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-pixel Plücker rays ``[o x d, d]`` with unit ``d``, as CameraCtrl's ``ray_condition``.

    CameraCtrl casts through (i + 0.5, j + 0.5) with corner-based intrinsics; ours casts through pixel
    centres (i, j) with centre-based intrinsics, which gives the same rays (METRICS.md).

    Args:
        w2c: (..., 4, 4) e.g. (B, V, T, 4, 4); K: (..., 3, 3) pixel intrinsics for an H x W image.

    Returns:
        (..., 6, H, W) e.g. (B, V, T, 6, H, W).
    """
    if w2c.shape[-2:] != (4, 4) or K.shape[-2:] != (3, 3) or w2c.shape[:-2] != K.shape[:-2]:
        raise ValueError(f"plucker_rays: expected w2c (..., 4, 4) and K (..., 3, 3) with the same leading dims, "
                         f"got {tuple(w2c.shape)} and {tuple(K.shape)}")
    if isinstance(height, bool) or isinstance(width, bool) or int(height) != height or int(width) != width \
            or height < 1 or width < 1:
        raise ValueError(f"plucker_rays: height, width: expected positive integers, got {height} x {width}")
    if not torch.isfinite(w2c).all() or not torch.isfinite(K).all():
        raise ValueError("plucker_rays: w2c and K must be finite, got NaN or inf")
    singular = torch.linalg.det(K.double()).abs() < 1e-12
    if singular.any():
        first = tuple(int(i) for i in singular.nonzero()[0]) if singular.dim() else ()
        raise ValueError(f"plucker_rays: K must be invertible (fx, fy != 0), got a singular K at index {first}")
    height, width = int(height), int(width)
    xy = pixel_grid(height, width, device=w2c.device, dtype=w2c.dtype).reshape(-1, 2)  # (H*W, 2)
    origins, dirs = pixel_rays(xy, w2c, K)  # (..., 3), (..., H*W, 3)
    moment = torch.linalg.cross(origins[..., None, :].expand_as(dirs), dirs)
    rays = torch.cat([moment, dirs], -1)  # (..., H*W, 6)
    return rearrange(rays, "... (h w) c -> ... c h w", h=height, w=width)
