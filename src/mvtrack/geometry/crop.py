"""Crop-and-resize of frames, and the intrinsics and pixel positions that follow it exactly.

A frame of size (H0, W0) is cut to ``box = (y0, x0, h, w)`` (integer pixels) and resized to ``size = (H, W)`` with a
resampler that keeps pixel centres aligned (OpenCV's ``cv2.resize``: output pixel centre ``x'`` samples input
``(x' + 0.5) * w / W - 0.5``). In mvtrack's pixel convention (top-left pixel centre at (0, 0)) a point then moves as
``x' = (x - x0 + 0.5) * W / w - 0.5``, and so do the principal point and focal lengths of ``K``.
"""

from __future__ import annotations

import torch

from .cameras import resize_intrinsics


def center_crop_box(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)``: the largest centred window of a ``source = (H0, W0)`` frame with the aspect ratio of
    ``size = (H, W)``; resizing it to ``size`` keeps the scene's proportions."""
    (H0, W0), (H, W) = source, size
    if min(H0, W0, H, W) < 1:
        raise ValueError(f"center_crop_box: expected positive sizes, got source {H0}x{W0} and size {H}x{W}")
    if H0 * W >= W0 * H:  # source taller than the target: crop rows
        h, w = max(1, round(W0 * H / W)), W0
    else:
        h, w = H0, max(1, round(H0 * W / H))
    return (H0 - h) // 2, (W0 - w) // 2, h, w


def crop_intrinsics(K: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Pixel intrinsics ``(..., 3, 3)`` of a frame after cutting ``box = (y0, x0, h, w)`` and resizing it to
    ``size = (H, W)``."""
    y0, x0, h, w = box
    out = K.clone()
    out[..., 0, 2] = K[..., 0, 2] - x0
    out[..., 1, 2] = K[..., 1, 2] - y0
    return resize_intrinsics(out, size[1] / w, size[0] / h)


def crop_points(xy: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Pixel positions ``(..., 2)`` = (x, y) after the same crop and resize as ``crop_intrinsics``."""
    y0, x0, h, w = box
    offset = xy.new_tensor([x0, y0])
    scale = xy.new_tensor([size[1] / w, size[0] / h])
    return (xy - offset + 0.5) * scale - 0.5


def inside_image(xy: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(...)`` bool: pixel positions ``(..., 2)`` inside an H x W image, whose pixels span [-0.5, W - 0.5)."""
    H, W = size
    return (xy[..., 0] >= -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < H - 0.5)


def corner_to_center(xy: torch.Tensor) -> torch.Tensor:
    """Pixel positions ``(..., 2)`` measured from the image's top-left *corner* (TAP-Vid, Kubric: pixel centres at
    i + 0.5) to mvtrack's convention (pixel centres at integers)."""
    return xy - 0.5


def corner_to_center_intrinsics(K: torch.Tensor) -> torch.Tensor:
    """Pixel intrinsics ``(..., 3, 3)`` whose principal point is measured from the image corner, to mvtrack's."""
    out = K.clone()
    out[..., :2, 2] = K[..., :2, 2] - 0.5
    return out
