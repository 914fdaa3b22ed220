"""Plots of camera trajectories as frusta, for looking at what a clip's cameras did."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mvtrack.geometry import w2c_to_c2w


def frustum_lines(c2w: np.ndarray, K: np.ndarray, height: int, width: int, size: float) -> list[np.ndarray]:
    """Line segments (each (2, 3)) of a camera frustum of depth ``size`` in world coordinates."""
    corners_px = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5], [-0.5, height - 0.5]])
    rays = np.concatenate([corners_px, np.ones((4, 1))], 1) @ np.linalg.inv(K).T * size
    corners = rays @ c2w[:3, :3].T + c2w[:3, 3]
    apex = c2w[:3, 3]
    lines = [np.stack([apex, c]) for c in corners]
    lines += [np.stack([corners[i], corners[(i + 1) % 4]]) for i in range(4)]
    return lines


def plot_cameras(
    path: str | Path, w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, points: torch.Tensor | None = None,
    title: str = "",
) -> Path:
    """Save a PNG of V camera trajectories: paths, frusta at the first, middle and last frames, optional points.

    Args:
        w2c: (V, T, 4, 4); K: (V, T, 3, 3); points: (M, 3) world points drawn as a faint cloud.
    """
    c2w = w2c_to_c2w(w2c.double()).cpu().numpy()
    Ks = K.double().cpu().numpy()
    V, T = c2w.shape[:2]
    centres = c2w[..., :3, 3]
    extent = np.ptp(centres.reshape(-1, 3), axis=0).max() if V * T > 1 else 1.0
    size = 0.15 * max(extent, np.linalg.norm(centres, axis=-1).mean() * 0.5, 1e-3)
    fig = Figure(figsize=(6, 5.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(projection="3d")
    cmap = colormaps["tab10"]
    for v in range(V):
        color = cmap(v % 10)
        ax.plot(*centres[v].T, color=color, lw=1.5, label=f"view {v}")
        for t in sorted({0, T // 2, T - 1}):
            for seg in frustum_lines(c2w[v, t], Ks[v, t], height, width, size):
                ax.plot(*seg.T, color=color, lw=0.8, alpha=0.4 + 0.6 * (t == 0))
    if points is not None and len(points):
        p = points.cpu().numpy()
        ax.scatter(*p.T, s=1, c="0.4", alpha=0.5)
    allp = np.concatenate([centres.reshape(-1, 3)] + ([points.cpu().numpy()] if points is not None else []))
    mid, half = (allp.max(0) + allp.min(0)) / 2, (allp.max(0) - allp.min(0)).max() / 2 + size
    ax.set_xlim(mid[0] - half, mid[0] + half)
    ax.set_ylim(mid[1] - half, mid[1] + half)
    ax.set_zlim(mid[2] - half, mid[2] + half)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_zlabel("z")
    ax.legend(loc="upper left", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
