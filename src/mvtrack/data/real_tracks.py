"""3D tracks of a real source video, for paired tracks (Track2View), and the curation of multi-camera pairs.

Sources of the source view's 3D tracks on real video (``paired.py`` lists (a) and (b), which need the engine):
    (c) ``video_tracks``: optical-flow tracks of the source on a pixel grid, triangulated with the source cameras.
        Only static points get 3D; a moving point (high reprojection residual) and an untriangulable one (seen
        from one camera centre: a rotating camera, a distant point, a short track) keep their 2D source tracks
        but have ``known = False`` everywhere, so ``paired_tracks`` drops them from the targets.
    (d) user files: ``load_depth`` (per-frame depth, lifted along the flow tracks with ``lift_tracks``) or
        ``load_tracks3d`` ((T, N, 3) world points from a 3D tracker).
``source_tracks`` picks (d) when a file is given, else (c). The returned ``points (1, T, N, 3)`` and
``known (1, T, N)`` go straight into ``paired_tracks(points, known, w2c[None], K[None], size, source)``.

Multi-camera real video (two synchronised views of one scene) has no cameras to triangulate from reliably, but
one 2D tracker pass can pair its views: ``reverse_and_concatenate`` (Track2View's curation) and
``split_concatenated_tracks``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from mvtrack.geometry import project
from mvtrack.geometry.optical_flow import flow_tracks
from mvtrack.geometry.triangulate import MAX_RESIDUAL, MIN_PARALLAX_PX, MIN_VIEWS, triangulate_tracks

from .paired import lift_tracks

MODES = ("tracks3d file", "depth file", "triangulated flow tracks", "stereo depth")


@dataclass
class RealTracks:
    """N 3D tracks of a source video of T frames, with their 2D source tracks.

    points: (1, T, N, 3) world points, NaN where not known; known: (1, T, N) bool.
    mode: one of ``MODES``, where the points come from.
    tracks: (T, N, 2) source pixels; visible: (T, N) bool (flow tracks, or the points projected into the source).
    queries: (N, 3) the (t, x, y) each flow track started from, or None (mode "tracks3d file").
    residual, static, triangulable: (N,) from ``triangulate_tracks`` in mode "triangulated flow tracks", else None;
        in mode "stereo depth" (``source_geometry.dense_tracks``) ``static`` is all True.
    seen: (1, T, N) bool, the frames that see a static point (its position is ``known`` at every frame), or None
        (seen = known); origin: (N,) long, the frame each static point was lifted from (mode "stereo depth").
    cell: the z-buffer cell (pixels of the source's size) that ``paired`` uses, or None (``zbuffer_visible``'s
        default): the footprint of one lifted pixel, a fraction of a pixel for depth maps finer than the source.
    weight: (N,) how much each track counts in a splat (a confirmed depth 1, an interpolated one less), or None.

    Unpacks as ``points, known, mode = source_tracks(...)``. ``save`` writes an ``.npz`` whose ``points`` field
    ``load_tracks3d`` (``mvtrack tracks --tracks3d``) reads back.
    """

    points: torch.Tensor
    known: torch.Tensor
    mode: str
    tracks: torch.Tensor
    visible: torch.Tensor
    queries: torch.Tensor | None = None
    residual: torch.Tensor | None = None
    static: torch.Tensor | None = None
    triangulable: torch.Tensor | None = None
    seen: torch.Tensor | None = None
    origin: torch.Tensor | None = None
    cell: float | None = None
    weight: torch.Tensor | None = None

    def __iter__(self):
        return iter((self.points, self.known, self.mode))

    def save(self, path: str | Path) -> Path:
        """Write every field to an ``.npz`` (points (T, N, 3), known (T, N), the rest as above; no pickle)."""
        arrays = {"points": self.points[0], "known": self.known[0], "tracks": self.tracks, "visible": self.visible,
                  "queries": self.queries, "residual": self.residual, "static": self.static,
                  "triangulable": self.triangulable, "seen": None if self.seen is None else self.seen[0],
                  "origin": self.origin, "weight": self.weight}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, mode=np.array(self.mode), **{k: v.cpu().numpy() for k, v in arrays.items() if v is not None})
        return path

    @classmethod
    def load(cls, path: str | Path) -> RealTracks:
        """Read back what ``save`` wrote."""
        with np.load(path, allow_pickle=False) as data:
            get = {k: torch.from_numpy(data[k]) for k in data.files if k != "mode"}
            mode = str(data["mode"])
        seen = get.pop("seen", None)
        return cls(get.pop("points")[None], get.pop("known")[None], mode, **get,
                   seen=None if seen is None else seen[None])

    def paired(self, w2c: torch.Tensor, K: torch.Tensor, size: tuple[int, int], source: int = 0):
        """Paired tracks in every camera ``w2c (1, V, T, 4, 4)``, ``K (1, V, T, 3, 3)`` (``paired_tracks``): static
        points carried with the frames that see them."""
        from .paired import paired_tracks

        if self.origin is None:
            paired = paired_tracks(self.points, self.known, w2c, K, size, source, self.cell, seen=self.seen)
        else:
            paired = paired_tracks(self.points, self.known, w2c, K, size, source, self.cell, seen=self.seen,
                                   static=self.static[None], origin=self.origin[None])
        if self.weight is not None:
            weight = self.weight.to(paired.tracks.dtype).expand(paired.visible.shape)
            paired.weight = weight if paired.weight is None else paired.weight * weight
        return paired

    def summary(self) -> dict:
        """Counts for a one-line report: tracks, known points, and in triangulated mode static / dynamic /
        untriangulable tracks and the median residual (px) of the triangulable ones."""
        out = {"mode": self.mode, "tracks": int(self.tracks.shape[1]),
               "known_fraction": float(self.known.float().mean()) if self.known.numel() else 0.0}
        if self.seen is not None:
            out.update(static=int(self.static.sum()), seen_fraction=float(self.seen.float().mean()))
        elif self.static is not None:
            tri = self.triangulable
            out.update(static=int(self.static.sum()), dynamic=int((tri & ~self.static).sum()),
                       untriangulable=int((~tri).sum()),
                       median_residual=float(self.residual[tri].median()) if tri.any() else math.nan)
        return out


def _check_video_cameras(frames: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor) -> None:
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames: expected (T, 3, H, W), got {tuple(frames.shape)}")
    T = frames.shape[0]
    if w2c.dim() != 3 or w2c.shape[1:] != (4, 4) or K.dim() != 3 or K.shape[1:] != (3, 3):
        raise ValueError(f"cameras: expected w2c (T, 4, 4) and K (T, 3, 3), got {tuple(w2c.shape)} and "
                         f"{tuple(K.shape)}")
    if w2c.shape[0] != T or K.shape[0] != T:
        raise ValueError(f"cameras: {w2c.shape[0]} frames of w2c and {K.shape[0]} of K, but the video has {T} frames")


def grid_flow_tracks(frames: torch.Tensor, grid_step: int = 4, query_frames: int = 3):
    """Flow tracks of one video from a pixel grid laid at several frames, so that regions revealed later (a
    camera moving on, an object uncovering the background) are tracked too.

    A grid point at a later query frame is dropped when a track from an earlier query frame is visible in its
    ``grid_step`` cell at that frame, so each region is tracked about once.

    Args:
        frames: (T, 3, H, W) float in [0, 1].
        grid_step: pixels between grid points (points on integer pixel centres, ``grid_step // 2`` from the edge).
        query_frames: how many frames, evenly spaced from the first to the last, get a grid.

    Returns:
        tracks (T, N, 2) pixels and visible (T, N) bool (torch, float64 / bool), queries (N, 3) as (t, x, y).
    """

    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames: expected (T, 3, H, W), got {tuple(frames.shape)}")
    if grid_step < 1 or query_frames < 1:
        raise ValueError(f"grid_step and query_frames: expected positive integers, got {grid_step}, {query_frames}")
    T, _, H, W = frames.shape
    uint8 = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (T, H, W, 3)
    ys, xs = np.meshgrid(np.arange(grid_step // 2, H, grid_step), np.arange(grid_step // 2, W, grid_step),
                         indexing="ij")
    grid = np.stack([xs.ravel(), ys.ravel()], -1).astype(np.float64)  # (G, 2)
    starts = np.unique(np.round(np.linspace(0, T - 1, query_frames)).astype(int))
    queries = np.concatenate([np.concatenate([np.full((len(grid), 1), t), grid], 1) for t in starts])  # (Q*G, 3)
    tracks, visible = flow_tracks(uint8, queries)  # (T, Q*G, 2), (T, Q*G)
    # 1. drop later grid points whose cell an earlier grid's track already covers at that frame
    gw, gh = -(-W // grid_step), -(-H // grid_step)
    keep = queries[:, 0] == starts[0]
    for t in starts[1:]:
        cells = np.zeros(gh * gw, bool)
        p = np.floor((tracks[t, keep] + 0.5) / grid_step).astype(int)
        ok = visible[t, keep] & (p[:, 0] >= 0) & (p[:, 0] < gw) & (p[:, 1] >= 0) & (p[:, 1] < gh)
        cells[p[ok, 1] * gw + p[ok, 0]] = True
        mine = queries[:, 0] == t
        index = (queries[mine, 2] // grid_step).astype(int) * gw + (queries[mine, 1] // grid_step).astype(int)
        keep[np.nonzero(mine)[0][~cells[index]]] = True
    return torch.from_numpy(tracks[:, keep]), torch.from_numpy(visible[:, keep]), torch.from_numpy(queries[keep])


def video_tracks(
    frames: torch.Tensor,
    w2c: torch.Tensor,
    K: torch.Tensor,
    grid_step: int = 4,
    query_frames: int = 3,
    max_residual: float = MAX_RESIDUAL,
    min_parallax_px: float = MIN_PARALLAX_PX,
    min_views: int = MIN_VIEWS,
) -> RealTracks:
    """(c) 3D tracks of a real video with known cameras and no depth: grid flow tracks triangulated.

    Args:
        frames: (T, 3, H, W) float in [0, 1]; w2c: (T, 4, 4) OpenCV world-to-camera; K: (T, 3, 3) pixels.
        grid_step, query_frames: see ``grid_flow_tracks``.
        max_residual, min_parallax_px, min_views: see ``mvtrack.geometry.triangulate_tracks``.

    Returns:
        ``RealTracks`` in mode "triangulated flow tracks": a static point has one world position, known (and
        finite) where its 2D track is visible; dynamic and untriangulable tracks are known nowhere (2D only).
    """
    _check_video_cameras(frames, w2c, K)
    tracks, visible, queries = grid_flow_tracks(frames, grid_step, query_frames)  # (T, N, 2), (T, N), (N, 3)
    tri = triangulate_tracks(tracks, visible, w2c, K, max_residual, min_parallax_px, min_views)
    T, N = visible.shape
    known = visible & tri.static[None]  # (T, N)
    points = torch.where(known[..., None], tri.points.float()[None], torch.tensor(math.nan))  # (T, N, 3)
    return RealTracks(points[None], known[None], MODES[2], tracks.float(), visible, queries.float(),
                      tri.residual.float(), tri.static, tri.triangulable)


def depth_tracks(frames: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor, depth: torch.Tensor,
                 grid_step: int = 4, query_frames: int = 3) -> RealTracks:
    """(d) 3D tracks from per-frame depth of the source: grid flow tracks lifted with ``lift_tracks``.

    Args:
        frames: (T, 3, H, W) in [0, 1]; w2c (T, 4, 4); K (T, 3, 3); depth: (T, H, W) z-depth of the source.

    Returns:
        ``RealTracks`` in mode "depth file"; points move with the depth, so dynamic points keep their 3D.
    """
    _check_video_cameras(frames, w2c, K)
    if depth.shape != (frames.shape[0], *frames.shape[-2:]):
        raise ValueError(f"depth: expected {(frames.shape[0], *frames.shape[-2:])}, got {tuple(depth.shape)}")
    tracks, visible, queries = grid_flow_tracks(frames, grid_step, query_frames)
    points, known = lift_tracks(tracks[None].float(), visible[None], depth[None].float(), w2c[None].float(),
                                K[None].float())
    points = torch.where(known[..., None], points, torch.full_like(points, math.nan))
    return RealTracks(points, known, MODES[1], tracks.float(), visible, queries.float())


def points_tracks(points: torch.Tensor, known: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor,
                  size: tuple[int, int]) -> RealTracks:
    """(d) User 3D tracks ``points (T, N, 3)``, ``known (T, N)`` with their source pixels for inspection (projected
    with the source cameras; visible where known, in front and inside the ``size = (H, W)`` image)."""
    T, N, _ = points.shape
    if w2c.shape != (T, 4, 4) or K.shape != (T, 3, 3) or known.shape != (T, N):
        raise ValueError(f"points_tracks: expected known {(T, N)}, w2c {(T, 4, 4)} and K {(T, 3, 3)}, got "
                         f"{tuple(known.shape)}, {tuple(w2c.shape)} and {tuple(K.shape)}")
    safe = torch.where(known[..., None], points, torch.zeros_like(points)).double()
    xy, z = project(safe, w2c.double(), K.double())  # (T, N, 2), (T, N)
    H, W = size
    inside = (xy[..., 0] >= -0.5) & (xy[..., 0] < W - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < H - 0.5)
    visible = known & (z > 0) & inside
    pts = torch.where(known[..., None], points, torch.full_like(points, math.nan))
    return RealTracks(pts[None].float(), known[None], MODES[0], xy.float(), visible)


def _load_array(path: str | Path, names: tuple[str, ...], what: str) -> tuple[np.ndarray, str]:
    """The array of a ``.npy``, or the field ``names[0]`` (or the only field) of an ``.npz``; never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path}: not found")
    if path.suffix.lower() not in (".npy", ".npz"):
        raise ValueError(f"{what} file {path}: expected a .npy or .npz file")
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy raises several types for corrupt files; the user needs the file and reason
        raise ValueError(f"{what} file {path}: cannot be read ({type(e).__name__}: {e})") from None
    if isinstance(data, np.ndarray):
        return data, names[0]
    with data:
        keys = list(data.keys())
        field = next((n for n in names if n in keys), keys[0] if len(keys) == 1 else None)
        if field is None:
            raise ValueError(f"{what} file {path}: expected a field named {' or '.join(names)}, got {keys}")
        return data[field], field


def load_depth(path: str | Path, T: int, H: int, W: int) -> torch.Tensor:
    """Per-frame z-depth of the source view from ``.npy`` (T', H', W') or ``.npz`` (field ``depth``).

    The first ``T`` frames are used (as with the video and the camera file), ``T' >= T``. Maps of another size
    are resized to (H, W) by nearest neighbour, so that no depth is blended across a silhouette (per-pixel depth
    is invariant to image scaling; intrinsics follow the video's size).

    Returns:
        (T, H, W) float32. Raises ``ValueError`` naming the file and field for a wrong shape, too few frames,
        NaN / infinite or non-positive depth.
    """
    depth, field = _load_array(path, ("depth",), "depth")
    where = f"depth file {path}: field {field}"
    if depth.ndim != 3 or not np.issubdtype(depth.dtype, np.number):
        raise ValueError(f"{where}: expected numbers (T, H, W), got {depth.dtype} {depth.shape}")
    if depth.shape[0] < T:
        raise ValueError(f"{where}: expected at least {T} frames (the video's), got {depth.shape[0]}")
    depth = depth[:T].astype(np.float32)
    if np.isnan(depth).any():
        raise ValueError(f"{where}: contains NaN (frame {int(np.nonzero(np.isnan(depth))[0][0])})")
    if not np.isfinite(depth).all():
        raise ValueError(f"{where}: contains infinite values (frame {int(np.nonzero(~np.isfinite(depth))[0][0])})")
    if (depth <= 0).any():
        raise ValueError(f"{where}: expected positive depth, got minimum {float(depth.min()):g} "
                         f"(frame {int(np.nonzero(depth <= 0)[0][0])})")
    if depth.shape[1:] != (H, W):
        depth = np.stack([cv2.resize(d, (W, H), interpolation=cv2.INTER_NEAREST_EXACT) for d in depth])
    return torch.from_numpy(depth)


def load_tracks3d(path: str | Path, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """User 3D tracks from ``.npy`` (T', N, 3) or ``.npz`` (field ``tracks3d`` or ``points``) world points in the
    source cameras' world frame; the first ``T`` frames are used, ``T' >= T``.

    Returns:
        points (T, N, 3) float32 and known (T, N) bool (finite points). ``ValueError`` naming the file and field
        for a wrong shape, too few frames, or no finite point at all.
    """
    points, field = _load_array(path, ("tracks3d", "points"), "tracks3d")
    where = f"tracks3d file {path}: field {field}"
    if points.ndim != 3 or points.shape[-1] != 3 or not np.issubdtype(points.dtype, np.number):
        raise ValueError(f"{where}: expected numbers (T, N, 3), got {points.dtype} {points.shape}")
    if points.shape[0] < T:
        raise ValueError(f"{where}: expected at least {T} frames (the video's), got {points.shape[0]}")
    points = torch.from_numpy(points[:T].astype(np.float32))
    known = torch.isfinite(points).all(-1)
    if not known.any():
        raise ValueError(f"{where}: no finite point")
    return points, known


def source_tracks(
    frames: torch.Tensor,
    w2c: torch.Tensor,
    K: torch.Tensor,
    depth: str | Path | torch.Tensor | None = None,
    tracks3d: str | Path | torch.Tensor | None = None,
    **kwargs,
) -> RealTracks:
    """The source view's 3D tracks by the most honest means available: a 3D-tracks file, else a depth file
    (both (d)), else triangulated flow tracks (c).

    Args:
        frames: (T, 3, H, W) in [0, 1]; w2c (T, 4, 4); K (T, 3, 3), with as many frames as the video.
        depth: a depth file (``load_depth``) or a (T, H, W) tensor; tracks3d: a file (``load_tracks3d``) or a
            (T, N, 3) tensor (NaN where unknown). At most one of them.
        kwargs: options of ``video_tracks`` (grid_step, query_frames, thresholds) where they apply.

    Returns:
        ``RealTracks``; ``points, known, mode = source_tracks(...)`` gives points (1, T, N, 3), known (1, T, N)
        and mode, one of ``MODES``.
    """
    _check_video_cameras(frames, w2c, K)
    if depth is not None and tracks3d is not None:
        raise ValueError("source_tracks: give a depth file or a tracks3d file, not both")
    T, _, H, W = frames.shape
    if tracks3d is not None:
        if isinstance(tracks3d, torch.Tensor):
            if tracks3d.dim() != 3 or tracks3d.shape[0] != T or tracks3d.shape[-1] != 3:
                raise ValueError(f"tracks3d: expected ({T}, N, 3), got {tuple(tracks3d.shape)}")
            points, known = tracks3d.float(), torch.isfinite(tracks3d).all(-1)
        else:
            points, known = load_tracks3d(tracks3d, T)
        return points_tracks(points, known, w2c, K, (H, W))
    if depth is not None:
        depth = depth if isinstance(depth, torch.Tensor) else load_depth(depth, T, H, W)
        flow = {k: v for k, v in kwargs.items() if k in ("grid_step", "query_frames")}
        return depth_tracks(frames, w2c, K, depth, **flow)
    return video_tracks(frames, w2c, K, **kwargs)


def reverse_and_concatenate(source: torch.Tensor, target: torch.Tensor, share_first: bool = True) -> torch.Tensor:
    """Track2View's curation of synchronised multi-camera video: the source played backwards, then the target,
    so that one 2D tracker pass from the junction gives one-to-one source <-> target tracks at every frame
    (``split_concatenated_tracks`` maps them back).

    Args:
        source, target: (T, 3, H, W) two views of the same T instants.
        share_first: the two views share their first frame (the target trajectory starts at the source's first
            camera, as in re-rendering data): the junction frame ``source[0]`` stands for both, ``target[0]`` is
            left out. False for two distinct cameras: every frame is kept and the tracker crosses from
            ``source[0]`` to ``target[0]``, a pure change of viewpoint at one instant.

    Returns:
        (2T - 1, 3, H, W) ``[source[T-1], ..., source[0], target[1], ..., target[T-1]]`` if ``share_first``, else
        (2T, 3, H, W) ``[source[T-1], ..., source[0], target[0], ..., target[T-1]]``.
    """
    if source.dim() != 4 or source.shape != target.shape:
        raise ValueError(f"reverse_and_concatenate: expected source and target (T, 3, H, W) of one shape, got "
                         f"{tuple(source.shape)} and {tuple(target.shape)}")
    return torch.cat([source.flip(0), target[1:] if share_first else target], 0)


def split_concatenated_tracks(tracks: torch.Tensor, visible: torch.Tensor, num_frames: int):
    """Tracks on a ``reverse_and_concatenate`` video back to per-frame source / target pairs.

    Args:
        tracks: (L, N, 2) pixels on the concatenated video, L = 2T - 1 (shared first frame) or 2T; visible: (L, N).
        num_frames: T.

    Returns:
        source_tracks (T, N, 2), source_visible (T, N), target_tracks (T, N, 2), target_visible (T, N), frame t of
        each view at index t; with a shared first frame, target frame 0 is the junction frame (source frame 0).
    """
    T = num_frames
    L = tracks.shape[0]
    if L not in (2 * T - 1, 2 * T) or tracks.dim() != 3 or tracks.shape[-1] != 2 or visible.shape != tracks.shape[:2]:
        raise ValueError(f"split_concatenated_tracks: expected tracks ({2 * T - 1} or {2 * T}, N, 2) and visible "
                         f"(L, N) for {T} frames, got {tuple(tracks.shape)} and {tuple(visible.shape)}")
    src, src_vis = tracks[:T].flip(0), visible[:T].flip(0)
    tgt, tgt_vis = tracks[L - T:], visible[L - T:]  # shared: starts at the junction frame T - 1
    return src, src_vis, tgt, tgt_vis
