"""Zero-shot feature tracking (Track4Gen 4.3.1): follow query points through a clip by nearest neighbours of a
model's features (a layer's Q/K, or the Track4Gen refiner's output), a cosine threshold deciding occlusion, and
score the tracks with TAP-Vid against the ground truth."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mvtrack.data import MultiViewClip
from mvtrack.evaluation import tapvid_metrics, to_tapvid

from .analysis import noised_inputs
from .capture import QKCapture
from .tokens import TokenGrid, sample_tokens, soft_argmax_uv

FEATURES = ("qk", "refined")


@torch.no_grad()
def feature_tracks(model, clip: MultiViewClip, features: str = "qk", layer: int | None = None, sigma: float = 0.3,
                   threshold: float = 0.5, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Track every ground-truth track of every view from the frame where it is first visible in that view.

    The clip (one clip, every frame noised to ``sigma``) goes through the model once. For ``qk`` the query point's
    query vector (bilinear) is compared with every key of each frame of the same view; for ``refined`` the refined
    feature with the refined features. The position is a soft-argmax within 1 token of the best cosine, and the point
    is predicted occluded where that cosine is below ``threshold``.

    Returns:
        tracks (V, T, N, 2) pixels, visible (V, T, N) bool, and queries (V, N) first-visible frame (-1: never).
    """
    if features not in FEATURES:
        raise ValueError(f"features: expected one of {FEATURES}, got {features!r}")
    if clip.video.shape[0] != 1:
        raise ValueError(f"clip: expected a single clip (batch 1), got batch {clip.video.shape[0]}")
    if features == "refined" and getattr(model, "refiner", None) is None:
        raise ValueError("features=refined: the model has no Track4Gen refiner")
    _, V, T = clip.video.shape[:3]
    H, W = clip.size
    device = next(model.parameters()).device
    inputs = noised_inputs(clip, sigma, torch.Generator().manual_seed(seed), device)
    grid = TokenGrid.of(model, V, T, H, W)
    if features == "qk":
        layer = len(model.wan.blocks) // 2 if layer is None else layer
        with QKCapture(model, [layer]) as capture:
            model(*inputs)
            q, k = capture.qk(layer)
        query_feats, key_feats = q.flatten(2).float(), k.flatten(2).float()  # (1, L, heads * d)
    else:
        model(*inputs)
        r = model.refined.float()  # (V*T, D, h, w)
        query_feats = key_feats = r.flatten(2).transpose(1, 2).reshape(1, -1, r.shape[1])
    keys = F.normalize(key_feats, dim=-1).view(V * T, grid.per_frame, -1)

    gt, vis = clip.tracks[0].to(device), clip.visible[0].to(device)  # (V, T, N, 2), (V, T, N)
    N = gt.shape[2]
    first = torch.where(vis.any(1), vis.float().argmax(1), torch.full((V, N), -1, device=device))  # (V, N)
    tracks = torch.zeros(V, T, N, 2, device=device)
    visible = torch.zeros(V, T, N, dtype=torch.bool, device=device)
    for v in range(V):
        ok = first[v] >= 0
        if not ok.any():
            continue
        n = ok.nonzero().squeeze(1)
        t0 = first[v, n]
        xy = gt[v, t0, n]  # (n, 2)
        src = grid.frame_index(torch.full_like(t0, v), t0)[None]
        q = F.normalize(sample_tokens(query_feats, grid, src, grid.to_grid(xy)[None])[0], dim=-1)  # (n, C)
        for t in range(T):
            cos = q @ keys[v * T + t].T  # (n, tokens)
            uv = soft_argmax_uv(cos[None] / 0.05, grid, radius=1.0)[0]
            tracks[v, t, n] = grid.to_pixels(uv)
            visible[v, t, n] = cos.max(-1).values >= threshold
        tracks[v, t0, n], visible[v, t0, n] = xy, True  # the query itself
    return tracks.cpu().numpy(), visible.cpu().numpy(), first.cpu().numpy()


def score_feature_tracks(clip: MultiViewClip, tracks: np.ndarray, visible: np.ndarray) -> dict[str, float]:
    """TAP-Vid (``first``, 256 scale) of :func:`feature_tracks` per view, averaged over views: AJ, delta_avg, OA."""
    gt, gt_vis = clip.tracks[0].numpy(), clip.visible[0].numpy()
    V, T, N = gt_vis.shape
    H, W = clip.size
    out = {"AJ": [], "delta_avg": [], "OA": []}
    for v in range(V):
        seen = gt_vis[v].any(0)
        if not seen.any():
            continue
        first = gt_vis[v][:, seen].argmax(0)
        queries = np.stack([np.full(seen.sum(), v), first, np.zeros(seen.sum()), np.zeros(seen.sum())], -1)
        qp, gt_tracks, gt_occ = to_tapvid(queries, gt[:, :, seen], gt_vis[:, :, seen], v)
        _, pred_tracks, pred_occ = to_tapvid(queries, tracks[:, :, seen], visible[:, :, seen], v)
        m = tapvid_metrics(qp, gt_occ, gt_tracks, pred_occ, pred_tracks, query_mode="first", image_size=(H, W))
        out["AJ"].append(float(m["average_jaccard"]))
        out["delta_avg"].append(float(m["average_pts_within_thresh"]))
        out["OA"].append(float(m["occlusion_accuracy"]))
    return {k: float(np.mean(v)) if v else float("nan") for k, v in out.items()}


def no_motion_tracks(clip: MultiViewClip) -> tuple[np.ndarray, np.ndarray]:
    """The reference a feature tracker must beat: every point stays where it was queried, always visible."""
    gt, vis = clip.tracks[0].numpy(), clip.visible[0].numpy()
    V, T, N = vis.shape
    first = np.where(vis.any(1), vis.argmax(1), 0)  # (V, N)
    start = gt[np.arange(V)[:, None], first, np.arange(N)[None]]  # (V, N, 2)
    return np.broadcast_to(start[:, None], gt.shape).copy(), np.ones_like(vis)
