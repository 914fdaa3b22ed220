"""Cross-view track consistency of two generated views (joint generation): the same physical point, tracked
independently in each generated video, should stay on corresponding epipolar lines of the requested cameras.

No model is needed: the split's ground-truth tracks name, at a query frame, where one physical point is in view a
and in view b; :func:`~mvtrack.evaluation.flow_tracks` follows it through each generated video on its own, and
the two tracked positions of every later (and earlier) frame are scored by their Sampson distance
(:func:`~mvtrack.evaluation.epipolar.sampson_distance`) under that frame's fundamental matrix. Unlike the
matched-feature epipolar score, it measures whether the *motion* of the two videos agrees over time, and a point
lost by the tracker in either view counts as inconsistent.

Conventions as ``epipolar.py``: pixels (x, y) with the top-left pixel centre at (0, 0); ``x_b^T F x_a = 0``.
"""

from __future__ import annotations

import numpy as np

from .epipolar import THRESHOLDS_PX, _camera_pair, _scorable_steps, fundamental_matrices, sampson_distance
from mvtrack.geometry.optical_flow import flow_tracks


def _failure(reason: str) -> dict:
    return {"median_px": float("nan"), **{f"frac_{d}px": float("nan") for d in THRESHOLDS_PX},
            "tracked": float("nan"), "points": 0, "reason": reason}


def cross_view_queries(visible_a: np.ndarray, visible_b: np.ndarray) -> np.ndarray:
    """Query frame of every ground-truth track: the first frame it is visible in both views, -1 if never.

    Args:
        visible_a, visible_b: (T, N) bool ground-truth visibility of the same N physical points in views a, b.

    Returns:
        (N,) int.
    """
    both = np.asarray(visible_a, bool) & np.asarray(visible_b, bool)  # (T, N)
    return np.where(both.any(0), both.argmax(0), -1)


def track_pair_scores(
    tracks_a: np.ndarray,
    alive_a: np.ndarray,
    tracks_b: np.ndarray,
    alive_b: np.ndarray,
    gt_visible_a: np.ndarray,
    gt_visible_b: np.ndarray,
    query_t: np.ndarray,
    F: np.ndarray,
    steps: np.ndarray | None = None,
) -> dict:
    """Score tracked positions of the same points in two views against each other (the core of
    :func:`cross_view_track_consistency`, on tracks already made).

    A (frame t, track n) entry is scored where the point is visible in both views by the ground truth, t is not
    the track's query frame (there both positions are given) and t is in ``steps``. Its distance is the Sampson
    distance of (tracks_a[t, n], tracks_b[t, n]) under F[t] when the tracker kept the point in both views, and
    counts as a failure (infinite) when it lost it in either.

    Args:
        tracks_a, tracks_b: (T, N, 2) tracked pixels (x, y) in views a and b.
        alive_a, alive_b: (T, N) bool, the tracker still follows the point.
        gt_visible_a, gt_visible_b: (T, N) bool ground-truth visibility.
        query_t: (N,) int query frame per track, negative for tracks not scored.
        F: (T, 3, 3) fundamental matrices, ``x_b^T F[t] x_a = 0``.
        steps: frames with epipolar geometry (camera centres apart); None: all.

    Returns:
        ``median_px`` (median distance over the entries tracked in both views), ``frac_1px`` / ``frac_2px`` /
        ``frac_4px`` (fraction of *all* scored entries strictly under 1 / 2 / 4 px: lost points count as
        failures), ``tracked`` (fraction of scored entries tracked in both views), ``points`` (entries scored).
        NaN values, ``points`` 0 and a ``reason`` when nothing can be scored.
    """
    tracks_a, tracks_b = np.asarray(tracks_a, np.float64), np.asarray(tracks_b, np.float64)
    T, N = tracks_a.shape[:2]
    if tracks_a.shape != (T, N, 2) or tracks_b.shape != (T, N, 2):
        raise ValueError(f"tracks_a, tracks_b: expected two (T, N, 2) arrays, got {tracks_a.shape} and {tracks_b.shape}")
    for name, x in (("alive_a", alive_a), ("alive_b", alive_b), ("gt_visible_a", gt_visible_a),
                    ("gt_visible_b", gt_visible_b)):
        if np.shape(x) != (T, N):
            raise ValueError(f"{name}: expected {(T, N)}, got {np.shape(x)}")
    if np.shape(query_t) != (N,) or np.shape(F) != (T, 3, 3):
        raise ValueError(f"query_t, F: expected {(N,)} and {(T, 3, 3)}, got {np.shape(query_t)} and {np.shape(F)}")
    query_t = np.asarray(query_t)
    in_steps = np.zeros(T, bool)
    in_steps[np.arange(T) if steps is None else np.asarray(steps, int)] = True
    scored = (np.asarray(gt_visible_a, bool) & np.asarray(gt_visible_b, bool)
              & (query_t[None] >= 0) & (np.arange(T)[:, None] != query_t[None]) & in_steps[:, None])  # (T, N)
    if not scored.any():
        return _failure("no point visible in both views outside its query frame")
    tracked = scored & np.asarray(alive_a, bool) & np.asarray(alive_b, bool)
    d = np.full((T, N), np.inf)
    for t in np.flatnonzero(tracked.any(1)):
        n = np.flatnonzero(tracked[t])
        d[t, n] = sampson_distance(tracks_a[t, n], tracks_b[t, n], F[t])
    d = d[scored]
    d = np.where(np.isnan(d), np.inf, d)  # undefined epipolar constraint (e.g. at an epipole): not consistent
    ok = np.isfinite(d)
    return {"median_px": float(np.median(d[ok])) if ok.any() else float("nan"),  # every point lost: no median
            **{f"frac_{k}px": float(np.mean(d < k)) for k in THRESHOLDS_PX},
            "tracked": float(ok.mean()), "points": int(d.size)}


def cross_view_track_consistency(
    video_a: np.ndarray,
    video_b: np.ndarray,
    gt_tracks_a: np.ndarray,
    gt_visible_a: np.ndarray,
    gt_tracks_b: np.ndarray,
    gt_visible_b: np.ndarray,
    w2c_a: np.ndarray,
    K_a: np.ndarray,
    w2c_b: np.ndarray,
    K_b: np.ndarray,
    min_baseline: float = 1e-6,
) -> dict:
    """Cross-view track consistency of two same-time generated videos under the requested cameras.

    Each ground-truth track (the same physical point in both views) is queried at the first frame it is visible
    in both views, at its true position there in each view, and followed through each generated video by
    :func:`~mvtrack.evaluation.flow_tracks`; the two tracked positions are scored at every other frame by
    :func:`track_pair_scores`. Ground truth scores near 0 (the flow's drift); views whose contents move
    inconsistently (a copy of one view in both, noise) score the epipolar error their motions imply, or lose
    their points. Blind to motion along the epipolar lines, like every epipolar score.

    Args:
        video_a, video_b: (T, H, W, 3) uint8 generated views.
        gt_tracks_a, gt_tracks_b: (T, N, 2) ground-truth pixels of the same N points; gt_visible_*: (T, N) bool.
        w2c_a, w2c_b: (T, 4, 4) requested world-to-camera; K_a, K_b: (T, 3, 3) pixel intrinsics.
        min_baseline: frames whose camera centres are closer than this have no epipolar geometry: left out.

    Returns:
        As :func:`track_pair_scores`; NaN with a ``reason`` for fewer than 2 frames, non-finite tracks or cameras,
        no baseline, blank videos, or no track visible in both views.
    """
    va, vb = np.asarray(video_a), np.asarray(video_b)
    if va.ndim != 4 or va.shape[-1] != 3 or vb.shape != va.shape:
        raise ValueError(f"video_a, video_b: expected two (T, H, W, 3) arrays, got {va.shape} and {vb.shape}")
    T = len(va)
    cams = _camera_pair(w2c_a, K_a, w2c_b, K_b, T)
    ta, tb = np.asarray(gt_tracks_a, np.float64), np.asarray(gt_tracks_b, np.float64)
    if ta.ndim != 3 or ta.shape[0] != T or ta.shape[2] != 2 or tb.shape != ta.shape:
        raise ValueError(f"gt_tracks_a, gt_tracks_b: expected two ({T}, N, 2) arrays, got {ta.shape} and {tb.shape}")
    if T < 2:
        return _failure("fewer than 2 frames: nothing to track")
    if not (np.isfinite(ta).all() and np.isfinite(tb).all()):
        return _failure("ground-truth tracks contain NaN or inf")
    steps, reason = _scorable_steps(cams, min_baseline)
    if reason:
        return _failure(reason)
    if va.reshape(T, -1).std(1).max() == 0 or vb.reshape(T, -1).std(1).max() == 0:
        return _failure("blank video: nothing to track")
    query_t = cross_view_queries(gt_visible_a, gt_visible_b)
    used = np.flatnonzero(query_t >= 0)
    if used.size == 0:
        return _failure("no ground-truth track visible in both views")
    q = query_t[used]
    pred_a, alive_a = flow_tracks(va.astype(np.uint8), np.stack([q, ta[q, used, 0], ta[q, used, 1]], -1))
    pred_b, alive_b = flow_tracks(vb.astype(np.uint8), np.stack([q, tb[q, used, 0], tb[q, used, 1]], -1))
    F = fundamental_matrices(*cams)  # (T, 3, 3)
    return track_pair_scores(pred_a, alive_a, pred_b, alive_b, np.asarray(gt_visible_a, bool)[:, used],
                             np.asarray(gt_visible_b, bool)[:, used], q, F, steps)
