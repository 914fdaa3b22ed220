"""Projection of world points into cameras and back, in mvtrack's pixel convention (see ``cameras``)."""

from __future__ import annotations

import torch


def transform_points(T: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Apply rigid transforms ``T (..., 4, 4)`` to points ``(..., N, 3)``; returns ``(..., N, 3)``."""
    return points @ T[..., :3, :3].transpose(-1, -2) + T[..., None, :3, 3]


def project(points: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, eps: float = 1e-8):
    """Project world points into pixels.

    Args:
        points: (..., N, 3) world points.
        w2c: (..., 4, 4) world-to-camera transforms (OpenCV).
        K: (..., 3, 3) pixel intrinsics.
        eps: depths are clamped to at least this before the division.

    Returns:
        xy: (..., N, 2) pixel coordinates, top-left pixel centre at (0, 0).
        depth: (..., N) z in the camera frame (negative behind the camera).
    """
    cam = transform_points(w2c, points)  # (..., N, 3)
    depth = cam[..., 2]
    uvw = cam @ K.transpose(-1, -2)  # (..., N, 3)
    xy = uvw[..., :2] / uvw[..., 2:].clamp_min(eps)
    return xy, depth


def unproject(xy: torch.Tensor, depth: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """Lift pixels with z-depth to world points.

    Args:
        xy: (..., N, 2) pixel coordinates.
        depth: (..., N) z-depth in the camera frame.
        w2c: (..., 4, 4), K: (..., 3, 3).

    Returns:
        (..., N, 3) world points.
    """
    ones = torch.ones_like(xy[..., :1])
    rays = torch.cat([xy, ones], -1) @ torch.linalg.inv(K).transpose(-1, -2)  # (..., N, 3), z = 1
    cam = rays * depth[..., None]
    R = w2c[..., :3, :3]
    t = w2c[..., None, :3, 3]
    return (cam - t) @ R  # R^T (p - t), row-vector form


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """Pixel-centre coordinates ``(H, W, 2)`` as (x, y), starting at (0, 0)."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype), torch.arange(width, device=device, dtype=dtype), indexing="ij"
    )
    return torch.stack([xs, ys], -1)


def unproject_depth_map(depth: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """World points ``(..., H, W, 3)`` of every pixel of z-depth maps ``(..., H, W)``."""
    H, W = depth.shape[-2:]
    xy = pixel_grid(H, W, device=depth.device, dtype=depth.dtype).reshape(-1, 2)
    pts = unproject(xy.expand(*depth.shape[:-2], H * W, 2), depth.flatten(-2), w2c, K)
    return pts.reshape(*depth.shape, 3)
