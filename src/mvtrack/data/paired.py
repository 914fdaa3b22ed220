"""Paired point tracks (Track2View): source points carried into target cameras.

A source view's tracks are lifted to 3D (exactly, from the engine; with the source view's own depth; or by
triangulation on real video, ``mvtrack.data.real_tracks``) and projected into every camera of the clip. The
result has the layout of a clip's multi-view tracks, so view ``source`` holds the source pixels and every other
view the target pixels, with their depths and visibility:

    tracks (B, V, T, N, 2) pixels; depth (B, V, T, N) z in each camera; visible (B, V, T, N) bool;
    source_frame (B, V, T, N) long or None: the source frame whose pixel gives track n its colour in view v at
    frame t (None: frame t itself); weight (B, V, T, N) float or None: how much track n counts there (None: 1).
    A static point is known at every frame, so a target frame can take its colour from any source frame that sees
    it, not only from the source frame of the same instant: from the frame it was lifted from, weighted by how
    near that frame's camera is to the target camera (``colour_frames``).

Points behind or near a camera (``NEAR``) are never visible in it, and every position is kept within
``POSITION_BOUND`` image sizes of the image, so that no projected point reaches a model as a huge number.

Sources of 3D tracks, in order of honesty:
    ``oracle_tracks``        (a) the engine's exact 3D tracks and visibility (an oracle: uses the targets' truth).
    ``source_depth_tracks``  (b) the source view's 2D tracks lifted with the source view's depth only; target
                             visibility by a z-buffer over the projected tracks (no target depth is read).
    real video               (c) flow tracks triangulated with the source cameras, (d) user depth or 3D points:
                             ``mvtrack.data.real_tracks``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from mvtrack.geometry import camera_centers, project, unproject, zbuffer_visible

from .clip import MultiViewClip


# A point whose depth in a camera is below NEAR times the clip's median track depth is behind or at that camera:
# never visible there. Positions are clamped to [-POSITION_BOUND, 1 + POSITION_BOUND] times the image size.
NEAR = 1e-3
POSITION_BOUND = 1.0
MIN_WEIGHT = 1e-3  # a static point read from a source camera this far from the target counts nowhere there


@dataclass
class PairedTracks:
    """N tracks of a source view seen from every view of a clip (shapes above; a batch of B clips)."""

    tracks: torch.Tensor
    depth: torch.Tensor
    visible: torch.Tensor
    source: int = 0
    source_frame: torch.Tensor | None = None
    weight: torch.Tensor | None = None

    def __post_init__(self):
        if self.tracks.dim() != 5 or self.tracks.shape[-1] != 2:
            raise ValueError(f"PairedTracks.tracks: expected (B, V, T, N, 2), got {tuple(self.tracks.shape)}")
        shape = self.tracks.shape[:-1]
        if self.depth.shape != shape or self.visible.shape != shape:
            raise ValueError(f"PairedTracks.depth/visible: expected {tuple(shape)}, got {tuple(self.depth.shape)} "
                             f"and {tuple(self.visible.shape)}")
        if self.visible.dtype != torch.bool:
            raise ValueError(f"PairedTracks.visible: expected bool, got {self.visible.dtype}")
        if not 0 <= self.source < shape[1]:
            raise ValueError(f"PairedTracks.source: expected a view index in [0, {shape[1]}), got {self.source}")
        if self.source_frame is not None and (self.source_frame.shape != shape or self.source_frame.dtype != torch.long):
            raise ValueError(f"PairedTracks.source_frame: expected long {tuple(shape)}, got {self.source_frame.dtype} "
                             f"{tuple(self.source_frame.shape)}")
        if self.weight is not None and self.weight.shape != shape:
            raise ValueError(f"PairedTracks.weight: expected {tuple(shape)}, got {tuple(self.weight.shape)}")

    @property
    def num_tracks(self) -> int:
        return self.tracks.shape[-2]

    def to(self, device) -> PairedTracks:
        frame = None if self.source_frame is None else self.source_frame.to(device)
        weight = None if self.weight is None else self.weight.to(device)
        return PairedTracks(self.tracks.to(device), self.depth.to(device), self.visible.to(device), self.source, frame,
                            weight)

    def select(self, frames: torch.Tensor | None = None, tracks: torch.Tensor | None = None) -> PairedTracks:
        """A subset of frames (index (F,)) and/or tracks (index (N',)). A colour frame that is not kept falls back
        to the frame itself."""
        t, d, v, sf, wt = self.tracks, self.depth, self.visible, self.source_frame, self.weight
        if frames is not None:
            frames = torch.as_tensor(frames, device=t.device).long()
            t, d, v = t[:, :, frames], d[:, :, frames], v[:, :, frames]
            wt = None if wt is None else wt[:, :, frames]
            if sf is not None:
                position = torch.full((self.tracks.shape[2],), -1, dtype=torch.long, device=t.device)
                position[frames] = torch.arange(len(frames), device=t.device)
                new = position[sf[:, :, frames]]  # (B, V, F, N): where the colour frame is among the kept ones
                own = torch.arange(len(frames), device=t.device)[None, None, :, None].expand_as(new)
                sf = torch.where(new >= 0, new, own)
        if tracks is not None:
            t, d, v = t[..., tracks, :], d[..., tracks], v[..., tracks]
            sf = None if sf is None else sf[..., tracks]
            wt = None if wt is None else wt[..., tracks]
        return PairedTracks(t, d, v, self.source, sf, wt)

    def select_views(self, views: list[int]) -> PairedTracks:
        """The tracks of a subset of views (which must include the source view), renumbered in the given order."""
        if self.source not in views:
            raise ValueError(f"views: expected a subset holding the source view {self.source}, got {views}")
        sf = None if self.source_frame is None else self.source_frame[:, views]
        wt = None if self.weight is None else self.weight[:, views]
        return PairedTracks(self.tracks[:, views], self.depth[:, views], self.visible[:, views],
                            list(views).index(self.source), sf, wt)

    def scaled(self, factor: float) -> PairedTracks:
        """Pixel coordinates for an image ``factor`` times the size (pixel centres stay centres)."""
        return replace(self, tracks=(self.tracks + 0.5) * factor - 0.5)

    def model_inputs(self) -> dict[str, torch.Tensor | int]:
        """Keyword arguments of ``MultiViewTransformer.forward``."""
        inputs = {"track_xy": self.tracks, "track_depth": self.depth, "track_visible": self.visible,
                  "track_source": self.source}
        if self.source_frame is not None:
            inputs["track_source_frame"] = self.source_frame
        if self.weight is not None:
            inputs["track_weight"] = self.weight
        return inputs


def paired_tracks(
    points: torch.Tensor,
    known: torch.Tensor,
    w2c: torch.Tensor,
    K: torch.Tensor,
    size: tuple[int, int],
    source: int = 0,
    cell: float | None = None,
    seen: torch.Tensor | None = None,
    static: torch.Tensor | None = None,
    origin: torch.Tensor | None = None,
) -> PairedTracks:
    """Project 3D tracks known in the source view into every camera.

    Args:
        points: (B, T, N, 3) world points of each track and frame.
        known: (B, T, N) bool, where the point's position is known (seen in the source view at that frame; a
            static point: every frame).
        w2c: (B, V, T, 4, 4); K: (B, V, T, 3, 3) for images of ``size = (H, W)``.
        source: the source view; its visibility is ``seen`` (inside its image).
        cell: z-buffer cell in pixels for the other views (``zbuffer_visible``; by default the track spacing).
        seen: (B, T, N) bool, where the source view sees the point (its colour can be read there); default
            ``known``.
        static: (B, N) bool, points that do not move, with ``origin`` (B, N) long, the source frame each was lifted
            from: in every other view, such a point takes its colour from its origin frame at every frame, weighted
            by how near that frame's camera is to the view's (``colour_frames``: ``PairedTracks.source_frame`` and
            ``weight``). None: every colour comes from the same frame.

    Returns:
        ``PairedTracks`` in every view; a target is visible where the point is known, projects into its image in
        front of the camera (deeper than ``NEAR`` of the tracks' median depth), and is nearest in its z-buffer cell
        among the projected known points. Positions are clamped within ``POSITION_BOUND`` image sizes of the image.
    """
    B, T, N, _ = points.shape
    V = w2c.shape[1]
    if known.shape != (B, T, N):
        raise ValueError(f"known: expected {(B, T, N)}, got {tuple(known.shape)}")
    if w2c.shape != (B, V, T, 4, 4) or K.shape != (B, V, T, 3, 3):
        raise ValueError(f"w2c, K: expected {(B, V, T, 4, 4)} and {(B, V, T, 3, 3)}, got {tuple(w2c.shape)} and "
                         f"{tuple(K.shape)}")
    if seen is not None and seen.shape != (B, T, N):
        raise ValueError(f"seen: expected {(B, T, N)}, got {tuple(seen.shape)}")
    if static is not None and (static.shape != (B, N) or origin is None or origin.shape != (B, N)):
        raise ValueError(f"static, origin: expected {(B, N)} each, got {tuple(static.shape)} and "
                         f"{None if origin is None else tuple(origin.shape)}")
    finite = torch.isfinite(points).all(-1)
    known = known & finite
    seen = known if seen is None else seen & known
    safe = torch.where(known[..., None], points, torch.zeros_like(points))
    xy, z = project(safe[:, None].expand(B, V, T, N, 3).double(), w2c.double(), K.double())  # (B, V, T, N, 2), (.., N)
    # 1. Near and behind the camera: not visible, and no huge positions (a point at z -> 0 projects to infinity)
    ref = z[:, source].masked_fill(~seen, float("nan")).flatten(1).nanmedian(-1).values  # (B,)
    ref = torch.nan_to_num(ref, nan=1.0).clamp_min(1e-12)[:, None, None, None]
    front = z > NEAR * ref  # (B, V, T, N)
    H, W = size
    bound = xy.new_tensor([W, H])
    xy = torch.nan_to_num(xy, nan=0.0).clamp(min=-POSITION_BOUND * bound, max=(1 + POSITION_BOUND) * bound)
    # 2. Where colours come from (static points), then visibility: a z-buffer over the known points in every view
    #    that count there (a point from a far source camera, of negligible weight, hides nothing), the source view's
    #    from ``seen``
    frame, weight = (None, None) if static is None else colour_frames(w2c, static, origin, source)
    counts = known[:, None] & front if weight is None else known[:, None] & front & (weight >= MIN_WEIGHT)
    visible = zbuffer_visible(
        xy.reshape(B * V * T, N, 2), z.reshape(B * V * T, N), counts.reshape(B * V * T, N), size, cell
    ).reshape(B, V, T, N)
    inside_src = front[:, source] & (xy[:, source, ..., 0] >= -0.5) & (xy[:, source, ..., 0] < W - 0.5)
    inside_src &= (xy[:, source, ..., 1] >= -0.5) & (xy[:, source, ..., 1] < H - 0.5)
    visible[:, source] = seen & inside_src
    xy = torch.where(known[:, None, ..., None], xy, torch.zeros_like(xy))
    z = torch.where(known[:, None] & front, z, torch.zeros_like(z))
    return PairedTracks(xy.to(points.dtype), z.to(points.dtype), visible, source, frame, weight)


def colour_frames(w2c: torch.Tensor, static: torch.Tensor, origin: torch.Tensor, source: int = 0,
                  falloff: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Where every view and frame reads each track's colour, and how much the track counts there.

    A static track is read at its origin frame (the source frame it was lifted from, where its pixel is exactly its
    colour), at every frame of every view, weighted by ``exp(-(d / (falloff d_min))^2)`` with ``d`` the
    distance from the origin frame's camera centre to the view's camera and ``d_min`` the nearest source camera's:
    a target frame is painted mostly by the source frames that saw it from nearby (view-dependent effects, depth
    errors grow with the baseline), and the others fill what those do not see. Other tracks, and the source view
    itself, read their own frame with weight 1.

    Args:
        w2c: (B, V, T, 4, 4); static: (B, N) bool; origin: (B, N) long, source frame indices.

    Returns:
        source_frame (B, V, T, N) long and weight (B, V, T, N) float32.
    """
    B, V, T = w2c.shape[:3]
    N = static.shape[-1]
    centres = camera_centers(w2c.double())  # (B, V, T, 3)
    distance = (centres[:, :, :, None] - centres[:, source, None, None]).norm(dim=-1)  # (B, V, T, T_source)
    nearest = distance.amin(-1, keepdim=True)  # (B, V, T, 1)
    d = distance.gather(-1, origin[:, None, None].expand(B, V, T, N))  # (B, V, T, N): origin camera to this camera
    scale = (nearest + 1e-9 * (1 + centres.norm(dim=-1, keepdim=True))).clamp_min(1e-12)
    weight = torch.exp(-(d / (falloff * scale)) ** 2).float()
    same = torch.arange(T, device=w2c.device)[None, None, :, None].expand(B, V, T, N)
    static = static[:, None, None].expand(B, V, T, N)
    frame = torch.where(static, origin[:, None, None].expand(B, V, T, N), same).clone()
    weight = torch.where(static, weight, torch.ones_like(weight))
    frame[:, source], weight[:, source] = same[:, source], 1.0
    return frame, weight


def lift_tracks(
    tracks: torch.Tensor, visible: torch.Tensor, depth: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift one view's 2D tracks to world points with that view's depth maps (nearest pixel, so that a point
    on a silhouette takes the depth of one surface rather than a blend of two).

    Args:
        tracks: (B, T, N, 2) pixels; visible: (B, T, N) bool.
        depth: (B, T, H, W) z-depth of the same view; w2c: (B, T, 4, 4); K: (B, T, 3, 3).

    Returns:
        points (B, T, N, 3) world points (0 where unknown); known (B, T, N) bool: visible, inside the image and
        with a finite positive depth.
    """
    B, T, N, _ = tracks.shape
    H, W = depth.shape[-2:]
    if visible.shape != (B, T, N) or depth.shape[:2] != (B, T):
        raise ValueError(f"lift_tracks: expected visible {(B, T, N)} and depth {(B, T)} + (H, W), got "
                         f"{tuple(visible.shape)} and {tuple(depth.shape)}")
    pix = (tracks + 0.5).floor().long()
    inside = (pix[..., 0] >= 0) & (pix[..., 0] < W) & (pix[..., 1] >= 0) & (pix[..., 1] < H)
    index = pix[..., 1].clamp(0, H - 1) * W + pix[..., 0].clamp(0, W - 1)  # (B, T, N)
    z = depth.reshape(B, T, H * W).gather(2, index)  # (B, T, N)
    known = visible & inside & torch.isfinite(z) & (z > 0)
    z = torch.where(known, z, torch.ones_like(z))
    points = unproject(tracks.double(), z.double(), w2c.double(), K.double()).to(tracks.dtype)
    return torch.where(known[..., None], points, torch.zeros_like(points)), known


def oracle_tracks(clip: MultiViewClip, source: int = 0) -> PairedTracks:
    """(a) The engine's exact tracks with their exact visibility in every view: an oracle (it uses the targets'
    true occlusions), for upper references only. Needs ``clip.tracks3d``. On clips with tracks from
    ``mvtrack prepare-tracks``, their cross-view tracks that have a 3D point (NaN elsewhere: not paired)."""
    if clip.tracks3d is None:
        raise ValueError("oracle_tracks: the clip has no tracks3d (exact 3D tracks come from the synthetic engine)")
    _, z = project(clip.tracks3d[:, None].expand(-1, clip.num_views, -1, -1, -1), clip.w2c, clip.K)
    # tracks the source sees, with a 3D point (``mvtrack prepare-tracks`` gives some tracks none: NaN)
    known = clip.visible[:, source] & torch.isfinite(clip.tracks3d).all(-1)
    visible = clip.visible & known[:, None]
    return PairedTracks(clip.tracks, torch.where(visible, z, torch.zeros_like(z)), visible, source)


def source_depth_tracks(clip: MultiViewClip, source: int = 0, cell: int | None = None) -> PairedTracks:
    """(b) What a monocular 3D tracker delivers: the source view's 2D tracks lifted with the source view's depth
    and cameras, then projected into the other cameras with a z-buffer for their visibility. Nothing of the
    target views but their cameras is read. Needs ``clip.depth``."""
    if clip.depth is None:
        raise ValueError("source_depth_tracks: the clip has no depth (pass the source view's depth maps)")
    points, known = lift_tracks(clip.tracks[:, source], clip.visible[:, source], clip.depth[:, source],
                                clip.w2c[:, source], clip.K[:, source])
    return paired_tracks(points, known, clip.w2c, clip.K, clip.size, source, cell)
