"""Epipolar consistency of two same-time videos under the cameras that were asked for: features matched between
them should lie on each other's epipolar lines. It needs no structure from motion and works at 64 px.

Conventions (METRICS.md, docs/evaluation.md): pixels with the top-left pixel centre at (0, 0); ``F`` from
:func:`mvtrack.geometry.arrays.fundamental_matrix_array`, ``x_b^T F x_a = 0``.
"""

from __future__ import annotations

import numpy as np

from mvtrack.geometry.arrays import fundamental_matrix_array

from .matching import Matcher, get_matcher

THRESHOLDS_PX = (1, 2, 4)


def sampson_distance(x_a: np.ndarray, x_b: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Sampson distance in pixels of point pairs under a fundamental matrix.

    ``sqrt((x_b^T F x_a)^2 / ((F x_a)_1^2 + (F x_a)_2^2 + (F^T x_b)_1^2 + (F^T x_b)_2^2))``: the first-order
    estimate of the smallest joint displacement of both points (a 4-vector, in pixels) that puts them on
    corresponding epipolar lines. Its square is OpenCV's ``cv2.sampsonDistance``. A pair offset by d pixels
    across its epipolar line in one image, with parallel epipolar lines of equal scale in both images
    (rectified stereo), scores d / sqrt(2): the correction is shared between the two points.

    Args:
        x_a: (N, 2) pixels (x, y) in image a; x_b: (N, 2) in image b.
        F: (3, 3) with ``x_b^T F x_a = 0`` for corresponding points, any scale.

    Returns:
        (N,) float64; NaN where the epipolar constraint is undefined there (F x_a and F^T x_b both zero, e.g.
        ``F = 0`` for coincident camera centres, or non-finite inputs).
    """
    x_a, x_b, F = (np.asarray(a, np.float64) for a in (x_a, x_b, F))
    if x_a.ndim != 2 or x_a.shape[1] != 2 or x_b.shape != x_a.shape:
        raise ValueError(f"x_a, x_b: expected two (N, 2) arrays, got {x_a.shape} and {x_b.shape}")
    if F.shape != (3, 3):
        raise ValueError(f"F: expected (3, 3), got {F.shape}")
    ha = np.concatenate([x_a, np.ones((len(x_a), 1))], 1)  # (N, 3)
    hb = np.concatenate([x_b, np.ones((len(x_b), 1))], 1)
    Fa = ha @ F.T  # (N, 3) rows are F x_a: lines in image b
    Fb = hb @ F  # (N, 3) rows are F^T x_b: lines in image a
    num = np.sum(hb * Fa, -1) ** 2
    den = Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Fb[:, 0] ** 2 + Fb[:, 1] ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, np.sqrt(num / np.where(den > 0, den, 1.0)), np.nan)


def _failure(reason: str, matches: int = 0) -> dict:
    return {"median_px": float("nan"), **{f"frac_{d}px": float("nan") for d in THRESHOLDS_PX},
            "matches": matches, "reason": reason}


def _uint8_frames(frames: np.ndarray) -> np.ndarray:
    """(T, 3, H, W) in [0, 1] -> (T, H, W, 3) uint8, as videos are stored."""
    return (np.clip(np.moveaxis(frames, 1, -1), 0, 1) * 255).round().astype(np.uint8)


def _camera_pair(w2c_a, K_a, w2c_b, K_b, T: int) -> list[np.ndarray]:
    """The two views' cameras as float64 arrays, each checked to be (T, 4, 4) or (T, 3, 3)."""
    cams = [np.asarray(x, np.float64) for x in (w2c_a, K_a, w2c_b, K_b)]
    for name, x, shape in zip(("w2c_a", "K_a", "w2c_b", "K_b"), cams, ((4, 4), (3, 3), (4, 4), (3, 3))):
        if x.shape != (T, *shape):
            raise ValueError(f"{name}: expected {(T, *shape)}, got {x.shape}")
    return cams


def _baseline_steps(cams: list[np.ndarray], min_baseline: float) -> np.ndarray:
    """Indices of the time steps whose two camera centres are more than ``min_baseline`` apart."""
    w2c_a, _, w2c_b, _ = cams
    centre_a = -np.einsum("tji,tj->ti", w2c_a[:, :3, :3], w2c_a[:, :3, 3])  # (T, 3): -R^T t
    centre_b = -np.einsum("tji,tj->ti", w2c_b[:, :3, :3], w2c_b[:, :3, 3])
    return np.flatnonzero(np.linalg.norm(centre_a - centre_b, axis=-1) > min_baseline)


NO_BASELINE = "no baseline: the camera centres coincide, so there is no epipolar geometry"


def _scorable_steps(cams: list[np.ndarray], min_baseline: float) -> tuple[np.ndarray, str | None]:
    """The time steps a camera pair can be scored at (:func:`_baseline_steps`), and why none can: non-finite
    cameras, or no baseline (None when some can)."""
    if not all(np.isfinite(x).all() for x in cams):
        return np.zeros(0, np.int64), "cameras contain NaN or inf"
    steps = _baseline_steps(cams, min_baseline)
    return steps, None if steps.size else NO_BASELINE


def fundamental_matrices(w2c_a: np.ndarray, K_a: np.ndarray, w2c_b: np.ndarray, K_b: np.ndarray) -> np.ndarray:
    """(T, 3, 3) fundamental matrices ``x_b^T F x_a = 0`` of same-time camera pairs, unit Frobenius norm (zero for
    coincident centres), from :func:`mvtrack.geometry.arrays.fundamental_matrix_array`. Cameras (T, 4, 4) /
    (T, 3, 3)."""
    return fundamental_matrix_array(w2c_a, K_a, w2c_b, K_b)


def epipolar_consistency(
    frames_a: np.ndarray,
    frames_b: np.ndarray,
    w2c_a: np.ndarray,
    K_a: np.ndarray,
    w2c_b: np.ndarray,
    K_b: np.ndarray,
    matcher: str | Matcher = "auto",
    min_baseline: float = 1e-6,
) -> dict:
    """How well two same-time videos agree with the requested relative camera: features are matched between the
    frames of each time step and scored by their Sampson distance (:func:`sampson_distance`) under that time's
    fundamental matrix; the distances of all time steps are pooled.

    Ground truth scores near 0 (the matcher's localisation error); a copy of the source scores the parallax it
    lacks, except for motion along the epipolar lines (a pure sideways translation keeps a copy consistent).

    Args:
        frames_a, frames_b: (T, 3, H, W) in [0, 1], the two videos (e.g. source and generated view).
        w2c_a, w2c_b: (T, 4, 4) requested world-to-camera; K_a, K_b: (T, 3, 3) pixel intrinsics.
        matcher: ``auto`` / ``xfeat`` / ``sift`` or a :class:`~mvtrack.evaluation.matching.Matcher`.
        min_baseline: time steps whose camera centres are closer than this (world units) have no epipolar
            geometry and are left out.

    Returns:
        ``median_px`` (median Sampson distance), ``frac_1px`` / ``frac_2px`` / ``frac_4px`` (fraction of matches
        strictly under 1 / 2 / 4 px), ``matches`` (number of matches scored, all time steps). When nothing can be
        scored (no frames, non-finite input, no baseline, blank frames, no matches) the values are NaN,
        ``matches`` is 0 and ``reason`` says why.
    """
    fa, fb = np.asarray(frames_a, np.float64), np.asarray(frames_b, np.float64)
    if fa.ndim != 4 or fa.shape[1] != 3 or fb.shape != fa.shape:
        raise ValueError(f"frames_a, frames_b: expected two (T, 3, H, W) arrays, got {fa.shape} and {fb.shape}")
    T = len(fa)
    cams = _camera_pair(w2c_a, K_a, w2c_b, K_b, T)
    if T == 0 or fa.shape[2] == 0 or fa.shape[3] == 0:
        return _failure("no frames")
    if not (np.isfinite(fa).all() and np.isfinite(fb).all()):
        return _failure("frames contain NaN or inf")
    steps, reason = _scorable_steps(cams, min_baseline)
    if reason:
        return _failure(reason)
    m = get_matcher(matcher) if isinstance(matcher, str) else matcher
    ua, ub = _uint8_frames(fa), _uint8_frames(fb)
    if all(ua[t].std() == 0 or ub[t].std() == 0 for t in steps):
        return _failure("blank frames: nothing to match")
    empty = (np.zeros((0, 2)), np.zeros((0, 2)))
    matches = [m(ua[t], ub[t]) if t in steps else empty for t in range(T)]  # the matcher skips uniform frames
    return epipolar_scores(matches, *cams, min_baseline=min_baseline)


def epipolar_scores(
    matches: list[tuple[np.ndarray, np.ndarray]],
    w2c_a: np.ndarray,
    K_a: np.ndarray,
    w2c_b: np.ndarray,
    K_b: np.ndarray,
    min_baseline: float = 1e-6,
) -> dict:
    """:func:`epipolar_consistency` from matches already made (e.g. by ``matching.match_videos``).

    Args:
        matches: T pairs ``(x_a (M_t, 2), x_b (M_t, 2))`` of same-time matched pixels.
        w2c_a, w2c_b: (T, 4, 4); K_a, K_b: (T, 3, 3).
    """
    cams = [np.asarray(x, np.float64) for x in (w2c_a, K_a, w2c_b, K_b)]
    if not all(np.isfinite(x).all() for x in cams):
        return _failure("cameras contain NaN or inf")
    if len(matches) != len(cams[0]):
        raise ValueError(f"matches: expected one entry per frame ({len(cams[0])}), got {len(matches)}")
    if not matches:
        return _failure("no frames")
    steps = _baseline_steps(cams, min_baseline)
    if steps.size == 0:
        return _failure(NO_BASELINE)
    F = fundamental_matrices(*cams)  # (T, 3, 3)
    distances = [sampson_distance(matches[t][0], matches[t][1], F[t]) for t in steps if len(matches[t][0])]
    d = np.concatenate(distances) if distances else np.zeros(0)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return _failure("no matches")
    return {"median_px": float(np.median(d)), **{f"frac_{k}px": float(np.mean(d < k)) for k in THRESHOLDS_PX},
            "matches": int(d.size)}
