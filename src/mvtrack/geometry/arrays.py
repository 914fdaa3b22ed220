"""The camera functions the metrics need, on numpy arrays: ``mvtrack.evaluation`` scores any system's videos and
must run where torch is not installed. Same conventions as the torch functions of this package (OpenCV ``w2c``,
pixel ``K``, the top-left pixel centre at (0, 0)); ``tests/geometry/test_arrays.py`` checks each against its torch
twin (``fundamental_matrix``, ``project``, ``unproject_depth_map``)."""

from __future__ import annotations

import numpy as np


def _skew(v: np.ndarray) -> np.ndarray:
    out = np.zeros((*v.shape[:-1], 3, 3), v.dtype)
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    return out - np.swapaxes(out, -1, -2)


def fundamental_matrix_array(w2c_1: np.ndarray, K_1: np.ndarray, w2c_2: np.ndarray, K_2: np.ndarray) -> np.ndarray:
    """Fundamental matrices ``(..., 3, 3)`` float64 with ``x2^T F x1 = 0`` for pixels x1 of camera 1, x2 of camera 2,
    scaled to unit Frobenius norm (zero for coincident centres).

    Args:
        w2c_1, w2c_2: (..., 4, 4) world-to-camera; K_1, K_2: (..., 3, 3) pixel intrinsics.
    """
    w2c_1, K_1, w2c_2, K_2 = (np.asarray(x, np.float64) for x in (w2c_1, K_1, w2c_2, K_2))
    T = w2c_2 @ np.linalg.inv(w2c_1)  # camera 1 -> camera 2
    E = _skew(T[..., :3, 3]) @ T[..., :3, :3]
    F = np.swapaxes(np.linalg.inv(K_2), -1, -2) @ E @ np.linalg.inv(K_1)
    norm = np.linalg.norm(F.reshape(*F.shape[:-2], 9), axis=-1)[..., None, None]
    return F / np.maximum(norm, 1e-12)


def project_array(points: np.ndarray, w2c: np.ndarray, K: np.ndarray, eps: float = 1e-8):
    """Pixels ``(..., N, 2)`` and z-depths ``(..., N)`` of world points ``(..., N, 3)`` in cameras ``w2c (..., 4, 4)``,
    ``K (..., 3, 3)`` (depths clamped at ``eps`` for the division; negative behind the camera)."""
    cam = points @ np.swapaxes(w2c[..., :3, :3], -1, -2) + w2c[..., None, :3, 3]  # (..., N, 3)
    uvw = cam @ np.swapaxes(K, -1, -2)
    return uvw[..., :2] / np.maximum(uvw[..., 2:], eps), cam[..., 2]


def unproject_depth_array(depth: np.ndarray, w2c: np.ndarray, K: np.ndarray) -> np.ndarray:
    """World points ``(..., H, W, 3)`` of every pixel of z-depth maps ``(..., H, W)`` seen by ``w2c (..., 4, 4)``,
    ``K (..., 3, 3)``."""
    H, W = depth.shape[-2:]
    ys, xs = np.meshgrid(np.arange(H, dtype=np.float64), np.arange(W, dtype=np.float64), indexing="ij")
    pixels = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3)  # (H*W, 3)
    rays = pixels @ np.swapaxes(np.linalg.inv(K), -1, -2)  # (..., H*W, 3), z = 1
    cam = rays * depth.reshape(*depth.shape[:-2], H * W, 1)
    world = (cam - w2c[..., None, :3, 3]) @ w2c[..., :3, :3]  # R^T (p - t), row-vector form
    return world.reshape(*depth.shape, 3)
