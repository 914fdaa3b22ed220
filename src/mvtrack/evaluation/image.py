"""Image and video metrics on arrays in [0, 1] with layout (..., C, H, W), as mvtrack's videos."""

from __future__ import annotations

import numpy as np


def psnr(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR in dB per image ``(...)`` of images ``(..., C, H, W)``; identical images give inf, NaN pixels or
    empty images NaN."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim < 3:
        raise ValueError(f"psnr: shapes differ or are not (..., C, H, W), {pred.shape} vs {gt.shape}")
    if pred.size == 0:
        return np.full(pred.shape[:-3], np.nan)
    mse = np.mean((pred - gt) ** 2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return 10 * np.log10(data_range**2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size) - (size - 1) / 2
    w = np.exp(-(x**2) / (2 * sigma**2))
    return w / w.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of the last two axes of ``x`` by the 1-D window ``w``."""
    k = len(w)
    rows = sum(w[i] * x[..., i: x.shape[-2] - k + 1 + i, :] for i in range(k))
    return sum(w[i] * rows[..., i: rows.shape[-1] - k + 1 + i] for i in range(k))


def ssim(pred: np.ndarray, gt: np.ndarray, data_range: float = 1.0, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """SSIM per image ``(...)`` of images ``(..., C, H, W)``: Gaussian 11x11 window (sigma 1.5), K1 = 0.01,
    K2 = 0.03, population statistics, mean over the windows that fit the image and over channels
    (equal to scikit-image's ``structural_similarity(gaussian_weights=True, use_sample_covariance=False)``)."""
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"ssim: shapes differ, {pred.shape} vs {gt.shape}")
    if min(pred.shape[-2:]) < size:
        raise ValueError(f"ssim: images must be at least {size} x {size}, got {pred.shape[-2:]}")
    w = _gaussian_window(size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _filter_valid(pred, w), _filter_valid(gt, w)
    sxx = _filter_valid(pred * pred, w) - mu_x**2
    syy = _filter_valid(gt * gt, w) - mu_y**2
    sxy = _filter_valid(pred * gt, w) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.mean(axis=(-3, -2, -1))


def temporal_flickering(video: np.ndarray, static_mask: np.ndarray | None = None) -> float:
    """VBench-style temporal flickering ``1 - mean |frame_{t+1} - frame_t|`` (values in [0, 1], so the
    255 of 8-bit frames is already divided out), over the pixels of ``static_mask``.

    Args:
        video: (T, C, H, W) in [0, 1].
        static_mask: (T - 1, H, W) or (H, W) bool, True where the scene is static; None uses every pixel.

    Returns:
        A float; NaN for T < 2, empty frames, or NaN pixels.
    """
    video = np.asarray(video, np.float64)
    if video.ndim != 4:
        raise ValueError(f"video: expected (T, C, H, W), got {video.shape}")
    if video.shape[0] < 2 or video[0].size == 0:
        return float("nan")  # fewer than two frames: no temporal change to measure
    diff = np.abs(video[1:] - video[:-1]).mean(axis=1)  # (T - 1, H, W)
    if static_mask is None:
        return float(1 - diff.mean())
    mask = np.broadcast_to(np.asarray(static_mask, bool), diff.shape)
    return float(1 - diff[mask].mean()) if mask.any() else float("nan")
