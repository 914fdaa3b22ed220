"""Point-tracking metrics, as google-deepmind/tapnet's ``compute_tapvid_metrics`` (METRICS.md).

TAP-Vid's layout is used only here, at the evaluation boundary: ``query_points (B, N, 3)`` as (t, y, x),
``tracks (B, N, T, 2)`` as (x, y), ``occluded (B, N, T)`` with True = occluded. ``to_tapvid`` converts
mvtrack's ``(V, T, N, 2)`` / ``visible`` layout for one view.
"""

from __future__ import annotations

import math

import numpy as np

THRESHOLDS = (1, 2, 4, 8, 16)
QUERY_MODES = ("first", "strided")


def to_tapvid(queries: np.ndarray, tracks: np.ndarray, visible: np.ndarray, view: int):
    """mvtrack tracks of one view to TAP-Vid's layout.

    Args:
        queries: (N, 4) as (v, t, x, y); tracks: (V, T, N, 2) pixels; visible: (V, T, N) bool.
        view: which view to take.

    Returns:
        query_points (N, 3) as (t, y, x) with the query's position in ``view`` at its query frame,
        tracks (N, T, 2) as (x, y), occluded (N, T) bool.
    """
    t = np.asarray(queries)[:, 1]
    tr = np.asarray(tracks)[view]  # (T, N, 2)
    n = np.arange(tr.shape[1])
    xy = tr[np.round(t).astype(int), n]  # (N, 2)
    query_points = np.stack([t, xy[:, 1], xy[:, 0]], -1)
    return query_points, tr.transpose(1, 0, 2), ~np.asarray(visible)[view].T


def tapvid_metrics(
    query_points: np.ndarray,
    gt_occluded: np.ndarray,
    gt_tracks: np.ndarray,
    pred_occluded: np.ndarray,
    pred_tracks: np.ndarray,
    query_mode: str = "first",
    image_size: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """TAP-Vid metrics per video.

    Args:
        query_points: (B, N, 3) or (N, 3) as (t, y, x).
        gt_occluded, pred_occluded: (B, N, T) or (N, T) bool, True = occluded.
        gt_tracks, pred_tracks: (B, N, T, 2) or (N, T, 2) as (x, y) pixels.
        query_mode: ``first`` scores frames strictly after the query frame; ``strided`` every frame but it.
        image_size: (H, W) of the frames; when given, coordinates are first scaled to 256 x 256 by pure
            multiplication, as published TAP-Vid numbers are. None scores in the given pixels.

    Returns:
        ``occlusion_accuracy``, ``pts_within_{d}`` and ``jaccard_{d}`` for d in 1, 2, 4, 8, 16,
        ``average_pts_within_thresh`` (delta_avg) and ``average_jaccard`` (AJ), each of shape (B,)
        (or scalar arrays for unbatched input); 0/0 gives NaN (no points, or nothing scored as with T = 1 in
        ``first`` mode). Non-finite predicted positions count as misses.

    Raises:
        ValueError: naming the argument, on shapes other than the above (e.g. a 1-D occlusion array), occlusion
            arrays that are not booleans (or 0 / 1), non-numeric or non-finite query frames, ground-truth positions
            that are not finite where the point is visible, an unknown mode, an ``image_size`` that is not two
            positive numbers, or a query frame outside [0, T - 1].
    """
    if query_mode not in QUERY_MODES:
        raise ValueError(f"query_mode: expected one of {QUERY_MODES}, got {query_mode!r}")
    names = ("query_points", "gt_occluded", "gt_tracks", "pred_occluded", "pred_tracks")
    arrays = [np.asarray(a) for a in (query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks)]
    if arrays[0].ndim not in (2, 3) or arrays[0].shape[-1] != 3:
        raise ValueError(f"query_points: expected (B, N, 3) or (N, 3) as (t, y, x), got shape {arrays[0].shape}")
    unbatched = arrays[0].ndim == 2
    if unbatched:
        arrays = [a[None] for a in arrays]
    lead = arrays[0].shape[:2]  # (B, N)
    if arrays[1].ndim != 3 or arrays[1].shape[:2] != lead:
        shape = "(N, T)" if unbatched else "(B, N, T)"
        raise ValueError(f"gt_occluded: expected {shape} with {'N' if unbatched else 'B, N'} of query_points "
                         f"{np.asarray(query_points).shape}, got shape {np.asarray(gt_occluded).shape}")
    B, N, T = arrays[1].shape
    for i, (name, shape) in enumerate(zip(names, ((B, N, 3), (B, N, T), (B, N, T, 2), (B, N, T), (B, N, T, 2)))):
        a = arrays[i]
        if a.shape != shape:
            given = np.asarray((query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks)[i]).shape
            raise ValueError(f"{name}: expected {shape[1:] if unbatched else shape}, got {given}")
        if a.dtype.kind not in "biuf":
            raise ValueError(f"{name}: expected numbers, got dtype {a.dtype}")
        if name.endswith("occluded"):
            if a.dtype != bool and not np.isin(a, (0, 1)).all():
                raise ValueError(f"{name}: expected booleans (True = occluded) or 0 / 1, got values such as "
                                 f"{a[~np.isin(a, (0, 1))].ravel()[0]!r}")
            arrays[i] = a.astype(bool)
    query_points, gt_occluded, gt_tracks, pred_occluded, pred_tracks = arrays
    gt_tracks = gt_tracks.astype(np.float64)
    pred_tracks = pred_tracks.astype(np.float64)
    if not np.isfinite(gt_tracks[~gt_occluded]).all():
        raise ValueError("gt_tracks: NaN or inf positions where gt_occluded says the point is visible; expected "
                         "finite pixels there")
    if image_size is not None:
        try:
            H, W = (float(x) for x in image_size)
        except (TypeError, ValueError):
            raise ValueError(f"image_size: expected (H, W), got {image_size!r}") from None
        if not (math.isfinite(H) and math.isfinite(W) and H > 0 and W > 0):
            raise ValueError(f"image_size: expected positive (H, W), got {image_size!r}")
        scale = np.array([256.0 / W, 256.0 / H])
        gt_tracks, pred_tracks = gt_tracks * scale, pred_tracks * scale

    if not np.isfinite(query_points[..., 0]).all():
        raise ValueError("query_points: query frames (t) must be finite")
    query_frame = np.round(query_points[..., 0]).astype(np.int64)  # numpy rounds half to even, as tapnet
    if query_frame.size and (query_frame.min() < 0 or query_frame.max() > T - 1):
        raise ValueError(f"query_points: query frames (t) must lie in [0, {T - 1}], got {query_frame.min()} to "
                         f"{query_frame.max()}")  # numpy indexing would wrap a negative frame around
    eye = np.eye(T, dtype=np.int32)
    frames_of_query = np.cumsum(eye, axis=1) - eye if query_mode == "first" else 1 - eye
    evaluated = frames_of_query[query_frame] > 0  # (B, N, T)

    with np.errstate(invalid="ignore", divide="ignore"):
        metrics = {"occlusion_accuracy": np.sum((pred_occluded == gt_occluded) & evaluated, (1, 2)) / np.sum(evaluated, (1, 2))}
        visible, pred_visible = ~gt_occluded, ~pred_occluded
        dist2 = np.sum((pred_tracks - gt_tracks) ** 2, -1)
        within_all, jaccard_all = [], []
        for d in THRESHOLDS:
            within = dist2 < d * d
            correct = within & visible
            gt_positives = np.sum(visible & evaluated, (1, 2))
            frac = np.sum(correct & evaluated, (1, 2)) / gt_positives
            tp = np.sum(correct & pred_visible & evaluated, (1, 2))
            fp = np.sum(((~visible) | ~within) & pred_visible & evaluated, (1, 2))
            jac = tp / (gt_positives + fp)
            metrics[f"pts_within_{d}"], metrics[f"jaccard_{d}"] = frac, jac
            within_all.append(frac)
            jaccard_all.append(jac)
    metrics["average_pts_within_thresh"] = np.mean(np.stack(within_all, 1), 1)
    metrics["average_jaccard"] = np.mean(np.stack(jaccard_all, 1), 1)
    if unbatched:
        metrics = {k: v[0] for k, v in metrics.items()}
    return metrics


def track_epe(pred_tracks: np.ndarray, gt_tracks: np.ndarray, gt_visible: np.ndarray) -> float:
    """Mean end-point error in pixels over ground-truth-visible points; NaN when none is visible.

    Args:
        pred_tracks, gt_tracks: (..., 2) pixels; gt_visible: (...) bool.
    """
    pred, gt, vis = np.asarray(pred_tracks, np.float64), np.asarray(gt_tracks, np.float64), np.asarray(gt_visible)
    if gt.ndim < 1 or gt.shape[-1] != 2 or pred.shape != gt.shape:
        raise ValueError(f"pred_tracks, gt_tracks: expected two (..., 2) arrays of one shape, got {pred.shape} and "
                         f"{gt.shape}")
    if vis.shape != gt.shape[:-1]:
        raise ValueError(f"gt_visible: expected {gt.shape[:-1]} (gt_tracks without its last axis), got {vis.shape}")
    vis = vis.astype(bool)
    if not np.isfinite(gt[vis]).all():
        raise ValueError("gt_tracks: NaN or inf positions where gt_visible is True; expected finite pixels there")
    err = np.linalg.norm(pred - gt, axis=-1)
    return float(err[vis].mean()) if vis.any() else float("nan")
