"""Drawing multi-view tracks onto frames and tiling views into one grid video."""

from __future__ import annotations

import math

import cv2
import numpy as np
import torch
from matplotlib import colormaps

from .video import upscale_frames


def track_colors(num_tracks: int, seed: int = 0) -> np.ndarray:
    """Distinct uint8 RGB colours ``(N, 3)``, shuffled so neighbouring tracks differ."""
    order = np.random.default_rng(seed).permutation(num_tracks)
    rgb = colormaps["hsv"](order / max(num_tracks, 1))[:, :3]
    return (rgb * 255).astype(np.uint8)


def draw_tracks(
    frames: np.ndarray, tracks: torch.Tensor, visible: torch.Tensor, colors: np.ndarray, scale: int = 2, trail: int = 4
) -> np.ndarray:
    """Frames of one view with tracks drawn: a dot where visible, a trail over the last frames, nothing while occluded.

    Args:
        frames: (T, H, W, 3) uint8.
        tracks: (T, N, 2) pixels; visible: (T, N) bool; colors: (N, 3) uint8.
        scale: integer upscaling before drawing, so dots and trails stay legible on small clips.

    Returns:
        (T, H * scale, W * scale, 3) uint8.
    """
    T, H, W, _ = frames.shape
    out = np.ascontiguousarray(upscale_frames(frames, scale))
    # Our pixel centres sit at integers; in the upscaled image pixel x covers [x*s, (x+1)*s).
    pts = ((tracks.cpu().numpy() + 0.5) * scale).astype(np.float64)
    vis = visible.cpu().numpy()
    radius = max(1, scale)
    for t in range(T):
        img = out[t]
        for k in range(max(0, t - trail), t):
            seg = vis[k] & vis[k + 1]
            for n in np.nonzero(seg)[0]:
                p0 = tuple(int(round(v)) for v in pts[k, n])
                p1 = tuple(int(round(v)) for v in pts[k + 1, n])
                cv2.line(img, p0, p1, tuple(int(c) for c in colors[n]), 1, cv2.LINE_AA)
        for n in np.nonzero(vis[t])[0]:
            cv2.circle(img, tuple(int(round(v)) for v in pts[t, n]), radius, tuple(int(c) for c in colors[n]), -1,
                       cv2.LINE_AA)
    return out


def tile_views(views: list[np.ndarray], columns: int | None = None, gap: int = 2) -> np.ndarray:
    """Tile V videos ``(T, H, W, 3)`` into one ``(T, H', W', 3)`` grid, row-major, with a black gap."""
    V = len(views)
    T, H, W, _ = views[0].shape
    cols = columns or math.ceil(math.sqrt(V))
    rows = math.ceil(V / cols)
    grid = np.zeros((T, rows * H + (rows - 1) * gap, cols * W + (cols - 1) * gap, 3), dtype=np.uint8)
    for v, frames in enumerate(views):
        r, c = divmod(v, cols)
        grid[:, r * (H + gap): r * (H + gap) + H, c * (W + gap): c * (W + gap) + W] = frames
    return grid
