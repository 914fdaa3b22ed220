"""Triangulation of 2D point tracks seen by one moving camera with known poses (multi-view DLT).

A static point seen from several camera centres is the intersection of its rays; a point that moves while the
camera moves has no such intersection, and shows it as a high reprojection residual; a point seen from
(nearly) one centre (a rotating camera, a very distant point, a track only a frame or two long) has no depth
to recover at all. ``triangulate_tracks`` labels every track as one of the three and returns world points for
the static ones only, so nothing downstream can mistake a guess for a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .cameras import camera_centers
from .projection import project

# Defaults chosen on the engine's static scenes with flow tracks (docs/data.md, "Tracks from real video"): a tighter
# residual or a wider parallax keeps fewer but more accurate points.
MAX_RESIDUAL = 0.5  # px RMS: above it a triangulable track is called moving (flow on static points: median ~0.1 px)
MIN_PARALLAX_PX = 8.0  # depth's relative error is about track error / parallax: 0.5 px / 8 px ~ 6%
MIN_VIEWS = 3  # with 2 views a motion along the epipolar line leaves no residual: 3 are needed to call a track static
REWEIGHT_STEPS = 2  # DLT passes reweighted by 1 / depth, so the algebraic error approaches the image error


@dataclass
class Triangulation:
    """Per-track result of ``triangulate_tracks`` for N tracks.

    points: (N, 3) world points, finite exactly where ``static``, NaN elsewhere.
    residual: (N,) RMS reprojection residual in pixels over the frames where the track is visible; NaN where
        the track is not ``triangulable``.
    static: (N,) bool, triangulable and residual <= ``max_residual``.
    triangulable: (N,) bool, seen in at least ``min_views`` frames from camera centres subtending at least
        ``min_parallax_px`` at the point, which lies in front of every camera that sees it.
    parallax: (N,) pixels: the widest angle at the point between two camera centres that see it, times the focal
        length (the image displacement that baseline produces; a pure rotation gives 0).
    num_views: (N,) long, frames in which the track is visible.
    """

    points: torch.Tensor
    residual: torch.Tensor
    static: torch.Tensor
    triangulable: torch.Tensor
    parallax: torch.Tensor
    num_views: torch.Tensor

    @property
    def dynamic(self) -> torch.Tensor:
        """(N,) bool: triangulable but with a residual too high for a static point (it moved)."""
        return self.triangulable & ~self.static

    def counts(self) -> dict[str, int]:
        """How many tracks are static, dynamic and untriangulable."""
        return {"static": int(self.static.sum()), "dynamic": int(self.dynamic.sum()),
                "untriangulable": int((~self.triangulable).sum())}


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"triangulate_tracks: {name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x


def _dlt(rows: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Homogeneous least squares: the unit 4-vector X minimising sum_t w_t |rows_t X|^2 for every track.

    rows: (T, N, 2, 4); weight: (T, N). Returns (N, 4).
    """
    M = torch.einsum("tnr,tnri,tnrj->nij", weight[..., None].expand(*weight.shape, 2), rows, rows)  # (N, 4, 4)
    scale = M.diagonal(dim1=-2, dim2=-1).sum(-1).clamp_min(1e-300)[:, None, None]  # conditioning only
    _, vectors = torch.linalg.eigh(M / scale)
    return vectors[..., 0]  # eigenvalues ascending: the null direction


def _parallax(points: torch.Tensor, centers: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The widest angle (radians) subtended at each point by two camera centres that see it, and whether the point
    sits at a camera centre.

    A point at a centre has no ray from that centre, so no angle: its parallax is 0, not the arbitrary angle
    between a zero-length ray and the others. Seen from one centre (a pure rotation), the DLT's null space holds
    both that centre and the point at infinity, and which one ``eigh`` returns depends on the processor's kernels,
    so this case must not depend on it. Angles come from ``atan2(|a x b|, a . b)``, accurate to ~1e-16 rad where
    ``arccos`` of the dot product loses half the digits near 0.

    Args:
        points: (N, 3) finite world points; centers: (T, 3) camera centres; seen: (T, N) bool.

    Returns:
        parallax (N,) radians (0 for a point seen from fewer than two centres or at a centre) and at_centre (N,)
        bool.
    """
    rays = points[None] - centers[:, None]  # (T, N, 3) from each centre to the point
    length = rays.norm(dim=-1)  # (T, N)
    at_centre = ((length <= 1e-9 * (1 + centers.norm(dim=-1)[:, None])) & seen).any(0)  # no ray to speak of
    rays = rays / length[..., None].clamp_min(1e-300)
    T, N = seen.shape
    parallax = torch.zeros(N, dtype=points.dtype, device=points.device)
    chunk = max(1, 2**20 // (T * T))  # chunks bound the (T, T, n, 3) pair table, not a loop per track
    for start in range(0, N, chunk):
        sl = slice(start, start + chunk)
        a, b = rays[:, None, sl], rays[None, :, sl]  # (T, 1, n, 3), (1, T, n, 3)
        angle = torch.atan2(torch.linalg.cross(a, b).norm(dim=-1), (a * b).sum(-1))  # (T, T, n)
        pair = seen[:, None, sl] & seen[None, :, sl]
        parallax[sl] = torch.where(pair, angle, torch.zeros_like(angle)).amax((0, 1))
    return torch.where(at_centre, torch.zeros_like(parallax), parallax), at_centre


def triangulate_tracks(
    tracks,
    visible,
    w2c,
    K,
    max_residual: float = MAX_RESIDUAL,
    min_parallax_px: float = MIN_PARALLAX_PX,
    min_views: int = MIN_VIEWS,
) -> Triangulation:
    """Triangulate N tracks of one camera over T frames, and say which are static, moving or untriangulable.

    All tracks are solved at once (batched DLT on normalised image coordinates, reweighted by the inverse depth of
    the previous pass so that it minimises approximately the image-plane error), in float64.

    Args:
        tracks: (T, N, 2) pixels (x, y), top-left pixel centre at (0, 0); torch or numpy.
        visible: (T, N) bool, the frames in which each track is observed.
        w2c: (T, 4, 4) OpenCV world-to-camera of each frame; K: (T, 3, 3) pixel intrinsics.
        max_residual: RMS reprojection residual in pixels above which a triangulable track is called dynamic.
        min_parallax_px: the widest angle subtended at the point by two camera centres that see it, in pixels
            (radians times the mean focal length), must reach this, else the track is untriangulable: depth error
            is about track error / parallax, and a pure rotation gives 0.
        min_views: a track needs at least this many visible frames (at least 2).

    Returns:
        ``Triangulation`` (torch tensors on the input's device): points (N, 3) NaN unless static, residual (N,),
        static / triangulable (N,) bool, parallax (N,) pixels, num_views (N,).
    """
    # 1. Check the inputs
    tracks, visible = _as_tensor(tracks, "tracks"), _as_tensor(visible, "visible")
    w2c, K = _as_tensor(w2c, "w2c"), _as_tensor(K, "K")
    if tracks.dim() != 3 or tracks.shape[-1] != 2:
        raise ValueError(f"triangulate_tracks: tracks expected (T, N, 2), got {tuple(tracks.shape)}")
    T, N, _ = tracks.shape
    if visible.shape != (T, N):
        raise ValueError(f"triangulate_tracks: visible expected {(T, N)}, got {tuple(visible.shape)}")
    if w2c.shape != (T, 4, 4) or K.shape != (T, 3, 3):
        raise ValueError(f"triangulate_tracks: w2c and K expected {(T, 4, 4)} and {(T, 3, 3)}, got "
                         f"{tuple(w2c.shape)} and {tuple(K.shape)}")
    if min_views < 2:
        raise ValueError(f"triangulate_tracks: min_views expected >= 2, got {min_views}")
    device = tracks.device
    xy, w2c, K = tracks.double(), w2c.double().to(device), K.double().to(device)
    seen = visible.to(device).bool() & torch.isfinite(xy).all(-1)  # (T, N)
    xy = torch.where(seen[..., None], xy, torch.zeros_like(xy))

    # 2. DLT rows on normalised coordinates: (a P3 - P1) X = 0, (b P3 - P2) X = 0 with P = w2c[:3]
    ones = torch.ones_like(xy[..., :1])
    ab = torch.cat([xy, ones], -1) @ torch.linalg.inv(K).transpose(-1, -2)  # (T, N, 3), z = 1
    P = w2c[:, None, :3, :]  # (T, 1, 3, 4)
    rows = ab[..., :2, None] * P[..., 2:3, :] - P[..., :2, :]  # (T, N, 2, 4)
    weight = seen.double()
    X = _dlt(rows, weight)  # (N, 4)
    for _ in range(REWEIGHT_STEPS):
        depth = torch.einsum("tj,nj->tn", w2c[:, 2], X) / X[:, 3]  # (T, N) z of the current estimate
        good = torch.isfinite(depth) & (depth.abs() > 1e-9)
        weight = torch.where(seen & good, 1 / depth.where(good, torch.ones_like(depth)) ** 2, torch.zeros_like(depth))
        weight = weight / weight.amax(0, keepdim=True).clamp_min(1e-300)
        X = _dlt(rows, weight)
    points = X[:, :3] / X[:, 3:]  # (N, 3); inf / NaN for points at infinity, caught below

    # 3. Reprojection residual, cheirality and parallax
    finite = torch.isfinite(points).all(-1)
    safe = torch.where(finite[:, None], points, torch.zeros_like(points))
    proj, z = project(safe.expand(T, N, 3), w2c, K)  # (T, N, 2), (T, N)
    num_views = seen.sum(0)
    err2 = ((proj - xy) ** 2).sum(-1).where(seen, torch.zeros_like(z))
    residual = (err2.sum(0) / num_views.clamp_min(1)).sqrt()  # (N,)
    in_front = ((z > 0) | ~seen).all(0)
    centers = camera_centers(w2c)  # (T, 3)
    parallax, at_centre = _parallax(safe, centers, seen)
    parallax = parallax * (K[:, 0, 0] + K[:, 1, 1]).mean() / 2  # pixels

    # 4. Labels
    triangulable = finite & in_front & ~at_centre & (num_views >= min_views) & (parallax >= min_parallax_px)
    static = triangulable & (residual <= max_residual)
    nan = torch.full_like(points, math.nan)
    return Triangulation(
        points=torch.where(static[:, None], points, nan),
        residual=torch.where(triangulable, residual, torch.full_like(residual, math.nan)),
        static=static,
        triangulable=triangulable,
        parallax=torch.where(finite, parallax, torch.zeros_like(parallax)),
        num_views=num_views,
    )
