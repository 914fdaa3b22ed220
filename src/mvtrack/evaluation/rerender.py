"""Geometric consistency with the source on clips with ground truth: the source warped into the target cameras with
true depth (``depth_warp``, also the benchmark's upper reference), covisibility, warp PSNR, and per-view PSNR /
SSIM. Numpy only; the learned-free baselines (copy the source, splat it along tracks) are in
``mvtrack.runners.references``."""

from __future__ import annotations

import cv2
import numpy as np

from mvtrack.geometry.arrays import project_array, unproject_depth_array

from .image import psnr, ssim


def _source_coords(target_depth, w2c_source, K_source, w2c_target, K_target):
    """Where each target pixel, lifted with the target's depth, lands in the source camera of the same frame:
    ``(xy (T, H, W, 2) float32 source pixels, z (T, H, W) depth in the source camera)``."""
    T, H, W = target_depth.shape
    points = unproject_depth_array(np.asarray(target_depth, np.float64), np.asarray(w2c_target, np.float64),
                                   np.asarray(K_target, np.float64))  # (T, H, W, 3)
    xy, z = project_array(points.reshape(T, H * W, 3), np.asarray(w2c_source, np.float64),
                          np.asarray(K_source, np.float64))  # (T, H*W, 2), (T, H*W)
    return xy.reshape(T, H, W, 2).astype(np.float32), z.reshape(T, H, W)


def _remap(frames: np.ndarray, xy: np.ndarray, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
    """Sample ``frames (T, C, H, W)`` at ``xy (T, H', W', 2)`` (border pixels repeat); returns (T, C, H', W')."""
    out = []
    for t in range(len(frames)):
        image = np.ascontiguousarray(np.moveaxis(frames[t], 0, -1), dtype=np.float32)
        warped = cv2.remap(image, xy[t, ..., 0], xy[t, ..., 1], interpolation, borderMode=cv2.BORDER_REPLICATE)
        out.append(np.moveaxis(warped.reshape(*xy.shape[1:3], -1), -1, 0))
    return np.stack(out)


def depth_warp(
    source: np.ndarray,
    target_depth: np.ndarray,
    w2c_source: np.ndarray,
    K_source: np.ndarray,
    w2c_target: np.ndarray,
    K_target: np.ndarray,
) -> np.ndarray:
    """Backward-warp the source view into the target cameras with the target's ground-truth depth.

    Each target pixel is lifted with its true depth, projected into the source camera of the same frame and
    sampled bilinearly (border pixels repeat; occlusions are not handled). It uses the true depth, which no
    model is given, so it is an upper reference rather than a baseline.

    Args:
        source: (T, 3, H, W) in [0, 1]; target_depth: (T, H, W) z-depth.
        w2c_source, w2c_target: (T, 4, 4); K_source, K_target: (T, 3, 3) pixel intrinsics.

    Returns:
        (T, 3, H, W) float32.
    """
    xy, _ = _source_coords(target_depth, w2c_source, K_source, w2c_target, K_target)
    return _remap(source, xy)


def covisible_mask(
    source_depth: np.ndarray,
    target_depth: np.ndarray,
    w2c_source: np.ndarray,
    K_source: np.ndarray,
    w2c_target: np.ndarray,
    K_target: np.ndarray,
    rel_tol: float = 0.02,
) -> np.ndarray:
    """(T, H, W) bool: target pixels whose surface point is also visible in the source view of the same frame:
    it projects in front of the source camera, inside its image, and the source's depth there (nearest pixel)
    agrees with the projected depth to ``rel_tol``."""
    xy, z = _source_coords(target_depth, w2c_source, K_source, w2c_target, K_target)
    H, W = source_depth.shape[1:]
    inside = (z > 0) & (xy[..., 0] > -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] > -0.5) & (xy[..., 1] < H - 0.5)
    seen = _remap(np.asarray(source_depth, np.float32)[:, None], xy, cv2.INTER_NEAREST)[:, 0]
    return inside & (np.abs(seen - z) <= rel_tol * np.maximum(z, 1e-9))


def warp_psnr(
    generated: np.ndarray,
    source: np.ndarray,
    source_depth: np.ndarray,
    target_depth: np.ndarray,
    w2c_source: np.ndarray,
    K_source: np.ndarray,
    w2c_target: np.ndarray,
    K_target: np.ndarray,
) -> float:
    """Geometric consistency of a generated view with its source, without a learned model: the source warped into
    the target cameras with ground-truth depth, compared with the generated view where the point is visible in
    both (METRICS.md). PSNR (dB) of the masked mean squared error over all frames; NaN when nothing is covisible.

    Args:
        generated, source: (T, 3, H, W) in [0, 1]; source_depth, target_depth: (T, H, W).
        w2c_*: (T, 4, 4); K_*: (T, 3, 3).
    """
    mask = covisible_mask(source_depth, target_depth, w2c_source, K_source, w2c_target, K_target)
    if not mask.any():
        return float("nan")
    warped = depth_warp(source, target_depth, w2c_source, K_source, w2c_target, K_target)
    err = (warped.astype(np.float64) - np.asarray(generated, np.float64)) ** 2  # (T, 3, H, W)
    mse = err.mean(axis=1)[mask].mean()
    return float("inf") if mse == 0 else float(10 * np.log10(1.0 / mse))


def view_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM over the frames of one view, ``pred`` and ``gt`` (T, 3, H, W) in [0, 1]."""
    return {"psnr": float(np.mean(psnr(pred, gt))), "ssim": float(np.mean(ssim(pred, gt)))}
