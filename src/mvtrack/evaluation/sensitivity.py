"""Camera sensitivity: does a generated view follow its camera, or would it look the same from any camera?"""

from __future__ import annotations

import numpy as np

from .image import psnr


def camera_sensitivity(out_true: np.ndarray, out_srccam: np.ndarray, out_seed2: np.ndarray,
                       gt: np.ndarray | None = None) -> dict:
    """How far a model's output moves when its target camera is replaced by the source's, relative to a change of
    noise seed, and how much the true camera helps.

    The three generations: ``out_true`` with the true target cameras and noise seed s; ``out_srccam`` with the
    source view's cameras in place of the target's and seed s'; ``out_seed2`` with the true cameras and seed s'.
    ``ratio = ||out_true - out_srccam|| / ||out_true - out_seed2||`` (Frobenius norms over everything): a model
    that ignores its camera gives ``out_srccam == out_seed2`` and scores exactly 1; one that follows it scores
    above 1. ``psnr_gain`` = PSNR(out_true, gt) - PSNR(out_srccam, gt), in dB, PSNR of the whole video's MSE.

    Args:
        out_true, out_srccam, out_seed2: (..., 3, H, W) in [0, 1], e.g. (T, 3, H, W) or (V - 1, T, 3, H, W).
        gt: same shape, the ground-truth target video, or None (no ``psnr_gain``).

    Returns:
        ``ratio`` (NaN when the seed changes nothing, e.g. a deterministic method, or on empty / non-finite input)
        and ``psnr_gain`` (NaN without ``gt``).
    """
    a, b, c = (np.asarray(x, np.float64) for x in (out_true, out_srccam, out_seed2))
    if a.shape != b.shape or a.shape != c.shape or a.ndim < 3:
        raise ValueError(f"out_true, out_srccam, out_seed2: expected one (..., 3, H, W) shape, got {a.shape}, "
                         f"{b.shape}, {c.shape}")
    nan = float("nan")
    if a.size == 0 or not (np.isfinite(a).all() and np.isfinite(b).all() and np.isfinite(c).all()):
        return {"ratio": nan, "psnr_gain": nan}
    seed_change = np.linalg.norm((a - c).ravel())
    ratio = float(np.linalg.norm((a - b).ravel()) / seed_change) if seed_change > 0 else nan
    gain = nan
    if gt is not None:
        g = np.asarray(gt, np.float64)
        if g.shape != a.shape:
            raise ValueError(f"gt: expected {a.shape}, got {g.shape}")
        flat = (-1, *a.shape[-2:])
        with np.errstate(invalid="ignore"):
            gain = float(psnr(a.reshape(flat), g.reshape(flat)) - psnr(b.reshape(flat), g.reshape(flat)))
    return {"ratio": ratio, "psnr_gain": gain}
