"""Two-view geometry: fundamental matrices, epipolar lines and distances, homographies."""

from __future__ import annotations

import torch

from .cameras import relative_pose


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrices ``(..., 3, 3)`` of vectors ``(..., 3)``: ``skew(a) @ b = a x b``."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(*v.shape, 3)


def fundamental_matrix(w2c_1: torch.Tensor, K_1: torch.Tensor, w2c_2: torch.Tensor, K_2: torch.Tensor) -> torch.Tensor:
    """Fundamental matrices ``(..., 3, 3)`` with ``x2^T F x1 = 0`` for pixels x1 of camera 1 and x2 of camera 2.

    Args:
        w2c_1, w2c_2: (..., 4, 4) world-to-camera; K_1, K_2: (..., 3, 3) pixel intrinsics.

    Returns:
        (..., 3, 3), scaled to unit Frobenius norm (F is defined up to scale). Zero for coincident centres.
    """
    T = relative_pose(w2c_1, w2c_2)
    E = skew(T[..., :3, 3]) @ T[..., :3, :3]
    F = torch.linalg.inv(K_2).transpose(-1, -2) @ E @ torch.linalg.inv(K_1)
    norm = F.flatten(-2).norm(dim=-1)[..., None, None]
    return F / norm.clamp_min(1e-12)


def to_homogeneous(xy: torch.Tensor) -> torch.Tensor:
    """Points ``(..., N, 2)`` to ``(..., N, 3)`` with a trailing 1."""
    return torch.cat([xy, torch.ones_like(xy[..., :1])], -1)


def epipolar_lines(F: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
    """Epipolar lines in image 2 of points in image 1.

    Args:
        F: (..., 3, 3) fundamental matrices (image 1 -> image 2); x1: (..., N, 2) pixels of image 1.

    Returns:
        (..., N, 3) lines (a, b, c) with a^2 + b^2 = 1, so that a x + b y + c is a signed distance in pixels.
    """
    lines = to_homogeneous(x1) @ F.transpose(-1, -2)  # (..., N, 3) rows are F x1
    return lines / lines[..., :2].norm(dim=-1, keepdim=True).clamp_min(1e-12)


def point_line_distance(points: torch.Tensor, lines: torch.Tensor) -> torch.Tensor:
    """Unsigned distances ``(..., N)`` of points ``(..., N, 2)`` to lines ``(..., N, 3)`` (any scale)."""
    num = (to_homogeneous(points) * lines).sum(-1).abs()
    return num / lines[..., :2].norm(dim=-1).clamp_min(1e-12)


def epipolar_distance(F: torch.Tensor, x1: torch.Tensor, x2: torch.Tensor) -> torch.Tensor:
    """Distances ``(..., N)`` in pixels of ``x2 (..., N, 2)`` to the epipolar lines of ``x1 (..., N, 2)``."""
    return point_line_distance(x2, epipolar_lines(F, x1))


def plane_homography(
    w2c_1: torch.Tensor, K_1: torch.Tensor, w2c_2: torch.Tensor, K_2: torch.Tensor, normal: torch.Tensor, offset
) -> torch.Tensor:
    """Homographies ``(..., 3, 3)`` mapping pixels of camera 1 to camera 2 through the world plane ``n . X = d``.

    Args:
        w2c_1, w2c_2: (..., 4, 4); K_1, K_2: (..., 3, 3); normal: (..., 3) plane normal in world
            coordinates; offset: (...) plane offset d.

    Returns:
        (..., 3, 3) H with ``x2 ~ H x1``, normalised so that H[2, 2] = 1 where possible.
    """
    offset = torch.as_tensor(offset, dtype=w2c_1.dtype, device=w2c_1.device)
    R1, t1 = w2c_1[..., :3, :3], w2c_1[..., :3, 3]
    # The plane in camera-1 coordinates: n1 . X1 = d1.
    n1 = (R1 @ normal[..., None])[..., 0]
    d1 = offset + (n1 * t1).sum(-1)
    T = relative_pose(w2c_1, w2c_2)
    R, t = T[..., :3, :3], T[..., :3, 3:]
    H = K_2 @ (R + t @ n1[..., None, :] / d1[..., None, None]) @ torch.linalg.inv(K_1)
    return H / torch.where(H[..., 2:, 2:].abs() > 1e-12, H[..., 2:, 2:], torch.ones_like(H[..., 2:, 2:]))


def rotation_homography(K_1: torch.Tensor, R_12: torch.Tensor, K_2: torch.Tensor) -> torch.Tensor:
    """Homography ``K_2 R_12 K_1^-1`` ``(..., 3, 3)`` between two cameras that share a centre."""
    return K_2 @ R_12 @ torch.linalg.inv(K_1)


def apply_homography(H: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """Map pixels ``(..., N, 2)`` by homographies ``(..., 3, 3)``; returns ``(..., N, 2)``."""
    p = to_homogeneous(xy) @ H.transpose(-1, -2)
    return p[..., :2] / p[..., 2:]
