"""Re-rendering references on clips with ground truth: copy the source view, or warp it with true depth."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from mvtrack.geometry import project, unproject_depth_map

from .image import psnr, ssim


def copy_source(source: np.ndarray) -> np.ndarray:
    """The trivial baseline: predict the target view as the source view, frame by frame. (T, 3, H, W)."""
    return np.array(source, copy=True)


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
    T, _, H, W = source.shape
    points = unproject_depth_map(
        torch.as_tensor(target_depth, dtype=torch.float64),
        torch.as_tensor(w2c_target, dtype=torch.float64),
        torch.as_tensor(K_target, dtype=torch.float64),
    )  # (T, H, W, 3)
    xy, _ = project(
        points.reshape(T, H * W, 3),
        torch.as_tensor(w2c_source, dtype=torch.float64),
        torch.as_tensor(K_source, dtype=torch.float64),
    )  # (T, H*W, 2)
    maps = xy.reshape(T, H, W, 2).numpy().astype(np.float32)
    out = np.empty((T, 3, H, W), np.float32)
    for t in range(T):
        image = np.ascontiguousarray(source[t].transpose(1, 2, 0), dtype=np.float32)
        warped = cv2.remap(image, maps[t, ..., 0], maps[t, ..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[t] = warped.transpose(2, 0, 1)
    return out


def view_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Mean PSNR (dB) and SSIM over the frames of one view, ``pred`` and ``gt`` (T, 3, H, W) in [0, 1]."""
    return {"psnr": float(np.mean(psnr(pred, gt))), "ssim": float(np.mean(ssim(pred, gt)))}
