"""Depth maps as pictures: inverse depth in a perceptual colour map, where the depth is not trusted in black."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def depth_image(depth: torch.Tensor, valid: torch.Tensor | None = None, moving: torch.Tensor | None = None
                ) -> np.ndarray:
    """Colour pictures of depth maps: near is warm, far is cool (turbo colour map of inverse depth between the 2nd
    and 98th percentile of the trusted pixels); untrusted pixels black, moving ones red.

    Args:
        depth: (T, H, W) z-depth; valid: (T, H, W) bool, the trusted pixels (default all); moving: (T, H, W) bool.

    Returns:
        (T, H, W, 3) uint8 RGB.
    """
    valid = torch.ones_like(depth, dtype=torch.bool) if valid is None else valid
    inverse = 1 / depth.double().clamp_min(1e-12)
    trusted = inverse[valid] if valid.any() else inverse.flatten()
    lo, hi = (float(trusted.quantile(q)) for q in (0.02, 0.98)) if trusted.numel() else (0.0, 1.0)
    level = ((inverse - lo) / max(hi - lo, 1e-12)).clamp(0, 1).numpy()
    out = np.stack([cv2.applyColorMap((x * 255).round().astype(np.uint8), cv2.COLORMAP_TURBO)[..., ::-1]
                    for x in level])
    out[~valid.numpy()] = 0
    if moving is not None:
        out[moving.numpy()] = (235, 40, 40)
    return np.ascontiguousarray(out)
