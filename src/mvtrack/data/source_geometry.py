"""Dense geometry of a real source video, and the scene scale a model sees it at.

A static scene filmed by a moving camera is its own multi-view stereo rig: ``estimate_geometry`` runs plane-sweep
stereo (``mvtrack.geometry.plane_sweep_depth``) over the source's own frames with their cameras, at a working
resolution above the model's, optionally completes it with a learned monocular depth aligned to it
(``mvtrack.data.learned_depth``), checks every frame's depth against its neighbours', and marks pixels whose
optical flow disagrees with the static geometry as moving. ``dense_tracks`` turns every confident static pixel into
a 3D track known at every frame (Track2View's paired tracks, far denser than triangulated flow tracks).

Scene scale: camera files of real videos have an arbitrary scale (SLAM units), the engine's scenes a fixed one.
A model sees every scene normalised so that the source's median depth is ``SCENE_DEPTH`` (``scene_scale``), the
same rule in training and inference (recorded in a model's ``mvtrack.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from mvtrack.geometry import (StereoDepth, camera_centers, carry_frames, fill_depth, plane_sweep_depth, project,
                              unproject_depth_map)
from mvtrack.geometry.cameras import resize_intrinsics
from mvtrack.geometry.stereo import depth_consistency, neighbour_frames

from .real_tracks import MODES, RealTracks
from .source import Source

# The engine's median depth of a source view (view 0 of 64 px training clips: 6.4 to 9.9, median 8.0 over 24
# clips), so that the shipped models, trained on the engine at its own scale, see real scenes at the same scale.
SCENE_DEPTH = 8.0
# Moving: reliable flow (forward-backward consistent to FLOW_CHECK_PX) farther than MOVING_PX pixels of the working
# resolution, and than MOVING_RATIO of its own length, from the flow the static geometry predicts
FLOW_CHECK_PX = 1.0
MOVING_PX = 2.0
MOVING_RATIO = 0.25
# How much a track of interpolated depth (not confirmed by any frame) counts against a confirmed one: it shows where
# nothing else lands, and is outweighed wherever something does
FILLED_WEIGHT = 0.05


@dataclass
class SourceGeometry:
    """Depth of every source frame at a working resolution (above the model's: its pixels become more tracks
    than the model has pixels, an anti-aliased splat), in the scene units of ``Source.w2c``.

    depth: (T, h, w) z-depth, complete (estimated where ``valid``, filled elsewhere: for references that splat
        whole frames). K: (T, 3, 3) pixel intrinsics of these maps (the source's crop at h x w).
        confidence: (T, h, w) in [0, 1]. valid: (T, h, w) bool, a confident stereo depth confirmed by another frame
        (the accurate pixels). supported: (T, h, w) bool, valid or a completed depth that a neighbour frame's
        completed depth confirms (textureless surfaces: less accurate, but where they land agrees between frames):
        the pixels that become tracks. Neither holds moving pixels. moving: (T, h, w) bool, pixels whose optical
        flow disagrees with the static geometry (left to the model). mode: how the depth was obtained; note: a
        sentence for the user.
    """

    depth: torch.Tensor
    K: torch.Tensor
    confidence: torch.Tensor
    valid: torch.Tensor
    supported: torch.Tensor
    moving: torch.Tensor
    mode: str
    note: str = ""

    def coverage(self) -> float:
        """Fraction of pixels that become tracks."""
        return float(self.supported.float().mean())

    def median_depth(self) -> float:
        """Median depth of the valid pixels (NaN without any)."""
        return float(self.depth[self.valid].median()) if self.valid.any() else math.nan

    def scaled(self, factor: float) -> SourceGeometry:
        return replace(self, depth=self.depth * factor)


def geometry_size(source: Source, factor: int = 2) -> tuple[int, int]:
    """The working size of the source's geometry: ``factor`` times the model's frame, at most the video's own
    crop (stereo needs texture the model's 64 px frames average away)."""
    H, W = source.size
    h, w = source.window.shape[1:3]
    scale = min(factor, h / H, w / W)
    return max(H, round(H * scale)), max(W, round(W * scale))


def sparse_depth_range(frames: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor) -> tuple[float, float] | None:
    """(near, far) of the scene from its triangulated flow tracks (2nd and 98th percentile of their depths,
    widened 1.5 times), or None when too few points triangulate (little parallax). A range needs less parallax
    than a measurement (2 px rather than ``MIN_PARALLAX_PX``): it is widened anyway."""
    from .real_tracks import video_tracks

    H = frames.shape[-2]
    tracks = video_tracks(frames, w2c, K, grid_step=max(2, H // 32), min_parallax_px=2.0)
    z = [project(tracks.points[0, t][tracks.known[0, t]].double(), w2c[t].double(), K[t].double())[1]
         for t in range(frames.shape[0])]
    z = torch.cat(z)
    z = z[z > 0]
    if len(z) < 20:
        return None
    return float(z.quantile(0.02)) / 1.5, float(z.quantile(0.98)) * 1.5


def moving_pixels(frames: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor, w2c: torch.Tensor,
                  K: torch.Tensor) -> torch.Tensor:
    """(T, H, W) bool: valid pixels whose optical flow (DIS) to the next frame (the previous one for the last frame)
    is reliable (forward-backward consistent to ``FLOW_CHECK_PX``) and differs from the flow the static geometry
    predicts (depth and cameras) by more than ``MOVING_PX`` and ``MOVING_RATIO`` of its length.

    Args:
        frames: (T, 3, H, W) in [0, 1]; depth, valid: (T, H, W); w2c (T, 4, 4); K (T, 3, 3).
    """
    T, _, H, W = frames.shape
    grey = [cv2.cvtColor((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), cv2.COLOR_RGB2GRAY)
            for f in frames.clamp(0, 1)]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    other = [t + 1 if t + 1 < T else t - 1 for t in range(T)]
    forward = np.stack([dis.calc(grey[t], grey[o], None) for t, o in enumerate(other)])  # (T, H, W, 2)
    backward = np.stack([dis.calc(grey[o], grey[t], None) for t, o in enumerate(other)])
    ys, xs = np.meshgrid(np.arange(H, dtype=np.float32), np.arange(W, dtype=np.float32), indexing="ij")
    back_at = np.stack([cv2.remap(b, xs + f[..., 0], ys + f[..., 1], cv2.INTER_LINEAR) for f, b in zip(forward, backward)])
    reliable = torch.from_numpy(np.linalg.norm(forward + back_at, axis=-1) <= FLOW_CHECK_PX)
    points = unproject_depth_map(depth.double(), w2c.double(), K.double())  # (T, H, W, 3)
    xy, _ = project(points.reshape(T, H * W, 3), w2c[other].double(), K[other].double())
    induced = xy.reshape(T, H, W, 2) - torch.stack([torch.from_numpy(xs), torch.from_numpy(ys)], -1).double()
    gap = (torch.from_numpy(forward).double() - induced).norm(dim=-1)
    return valid & reliable & (gap > MOVING_PX) & (gap > MOVING_RATIO * induced.norm(dim=-1))


def estimate_geometry(
    source: Source,
    depth_range: tuple[float, float] | None = None,
    working_size: tuple[int, int] | None = None,
    depth_model=None,
    num_planes: int = 64,
    min_confidence: float = 0.05,
) -> SourceGeometry:
    """Dense depth of a source video's frames from the frames themselves (static content, known cameras).

    1. Plane-sweep stereo over the source's frames at ``working_size`` (default ``geometry_size``), the sweep's
       range from the triangulated flow tracks (else from the camera baseline).
    2. With ``depth_model`` (a ``LearnedDepth``), its monocular depth is aligned to the stereo depth (scale and
       shift of inverse depth, on the confident pixels) and fills where stereo is not confident; the merged maps
       are checked against each other again.
    3. The depth is completed (``fill_depth``); completed pixels that a neighbour frame's completed depth confirms
       (``depth_consistency``, the stereo's own check) are valid too. Pixels whose optical flow disagrees with the
       static geometry are ``moving`` and not valid.

    A depth file given with the source (``Source.depth``) is used as it is (mode "depth file"; every pixel valid).

    Args:
        source: a ``load_source`` result with cameras (a file, or estimated: a static default camera has no
            parallax and gives no depth).
        depth_range: (near, far) of the sweep in the cameras' units; default from the triangulated tracks.
        working_size: (H', W') of the stereo; default ``geometry_size(source)``.
        depth_model: a ``mvtrack.data.learned_depth.LearnedDepth`` or None.

    Returns:
        ``SourceGeometry`` at ``working_size`` (the depth file's: the source's size).
    """
    T = source.num_frames
    size = source.size
    if source.depth is not None:
        depth = source.depth.float()
        valid = torch.ones_like(depth, dtype=torch.bool)
        return SourceGeometry(depth, source.K, torch.ones_like(depth), valid, valid, torch.zeros_like(valid),
                              "depth file", f"depth file: {T} frames")
    if source.cameras == "default" or T < 2:
        empty = torch.zeros(T, *size, dtype=torch.bool)
        return SourceGeometry(torch.ones(T, *size), source.K, torch.zeros(T, *size), empty, empty, empty, "none",
                              "no depth: the source's cameras are unknown (a static default camera has no parallax)")
    working_size = working_size or geometry_size(source)
    frames, K = source.at(working_size)
    w2c = source.w2c
    centres = camera_centers(w2c.double())
    baseline = float((centres[:, None] - centres[None]).norm(dim=-1).max())
    if baseline <= 1e-4 * (1 + float(centres.norm(dim=-1).max())):  # float32 poses of a turning camera: noise only
        empty = torch.zeros(T, *working_size, dtype=torch.bool)
        return SourceGeometry(torch.ones(T, *working_size), K, torch.zeros(T, *working_size), empty, empty, empty,
                              "none", "no depth: the camera does not move (a static or turning camera has no "
                              "parallax)")
    if depth_range is None:
        depth_range = sparse_depth_range(frames, w2c, K)
        if depth_range is None:  # nothing triangulates: a static or turning camera, no parallax to measure depth
            empty = torch.zeros(T, *working_size, dtype=torch.bool)
            return SourceGeometry(torch.ones(T, *working_size), K, torch.zeros(T, *working_size), empty, empty, empty,
                                  "none", "no depth: too little camera motion (no parallax) for stereo")
    stereo = plane_sweep_depth(frames, w2c, K, depth_range, num_planes=num_planes, min_confidence=min_confidence)
    depth, confidence, valid, mode = stereo.depth, stereo.confidence, stereo.valid, "stereo"
    learned = torch.zeros_like(valid)
    if depth_model is not None:
        depth, learned = _merge_learned(depth_model, frames, stereo, w2c, K)
        mode = "stereo + depth model"
    # the completed depth where the frames confirm it too (the stereo's own check: textureless walls that no
    # window can match, but whose interpolated surface lands where the neighbours' does)
    depth = fill_depth(depth, valid | learned)
    supported = valid | learned | (depth_consistency(depth, w2c, K, neighbour_frames(T, 4)) >= 1)
    moving = moving_pixels(frames, depth, supported, w2c, K)
    valid, supported = valid & ~moving, supported & ~moving
    note = (f"{mode} at {working_size[0]}x{working_size[1]}: {100 * float(valid.float().mean()):.0f}% of pixels with a "
            f"confident static depth, {100 * float(supported.float().mean()):.0f}% with a confirmed one, "
            f"{100 * float(moving.float().mean()):.0f}% moving")
    return SourceGeometry(depth, K, confidence, valid, supported, moving, mode, note)


def _merge_learned(depth_model, frames: torch.Tensor, stereo: StereoDepth, w2c: torch.Tensor, K: torch.Tensor):
    """Stereo depth where confident, the learned depth aligned to it elsewhere; (depth, where the aligned learned
    depth is confirmed by a neighbour frame)."""
    from .learned_depth import align_inverse_depth

    relative = depth_model.predict(frames)  # (T, H, W) relative inverse depth
    aligned = align_inverse_depth(relative, stereo.depth, stereo.valid)
    if aligned is None:
        return stereo.depth, torch.zeros_like(stereo.valid)
    depth = torch.where(stereo.valid, stereo.depth, aligned)
    confirmed = depth_consistency(depth, w2c, K, neighbour_frames(frames.shape[0], 4)) >= 1
    return depth, confirmed & ~stereo.valid


def scene_scale(geometry: SourceGeometry, reference: float = SCENE_DEPTH) -> float:
    """The factor that brings the source's median valid depth to ``reference`` (1 without valid depth)."""
    median = geometry.median_depth()
    return reference / median if math.isfinite(median) and median > 0 else 1.0


def scale_cameras(w2c: torch.Tensor, factor: float) -> torch.Tensor:
    """World-to-camera ``(..., 4, 4)`` of the same cameras in a world scaled by ``factor`` (translations scale)."""
    out = w2c.clone()
    out[..., :3, 3] = out[..., :3, 3] * factor
    return out


def dense_tracks(source: Source, geometry: SourceGeometry, grid_step: int = 1, everywhere: bool = True) -> RealTracks:
    """Every pixel (on a ``grid_step`` grid) of every source frame as a static 3D track: its world point is known at
    every frame, and seen (its colour readable) at the frames whose supported depth confirms it. A supported pixel
    counts with weight 1, any other (completed depth: a textureless wall, an occlusion edge) with ``FILLED_WEIGHT``:
    it fills where nothing better lands. ``everywhere=False``: the supported pixels only.

    Returns:
        ``RealTracks`` in mode "stereo depth": points (1, T, N, 3) (the same point at every frame), known
        (1, T, N) all True, seen (1, T, N), static (N,) all True, origin (N,), weight (N,), tracks (T, N, 2) its
        projections into the source at the source's (model's) size, visible = seen. N = T x h x w / grid_step^2 for
        maps of h x w (times the supported share without ``everywhere``).
    """
    T, H, W = geometry.depth.shape
    step = slice(grid_step // 2, None, grid_step)
    lifted = torch.ones_like(geometry.supported) if everywhere else geometry.supported
    sub = lifted[:, step, step]  # (T, h, w)
    points = unproject_depth_map(geometry.depth.double(), source.w2c.double(), geometry.K.double())  # (T, h, w, 3)
    points = points[:, step, step][sub]  # (N, 3)
    weight = torch.where(geometry.supported[:, step, step][sub], 1.0, FILLED_WEIGHT)
    N = points.shape[0]
    xy, z = project(points[None].expand(T, N, 3), source.w2c.double(), geometry.K.double())  # (T, N, 2), (T, N)
    seen = _confirmed(xy, z, geometry)  # (T, N)
    xy, _ = project(points[None].expand(T, N, 3), source.w2c.double(), source.K.double())  # at the model's size
    origin = torch.arange(T)[:, None, None].expand_as(sub)[sub]  # each point is seen by the frame it came from
    seen[origin, torch.arange(N)] = True
    known = torch.ones(T, N, dtype=torch.bool)
    pts = points.float()[None].expand(T, N, 3)
    return RealTracks(pts[None].contiguous(), known[None], MODES[3], xy.float(), seen, seen=seen[None],
                      static=torch.ones(N, dtype=torch.bool), origin=origin,
                      cell=grid_step * source.size[1] / geometry.depth.shape[-1], weight=weight)


def carry_source(source: Source, tracks: RealTracks, w2c: torch.Tensor, K: torch.Tensor, size: tuple[int, int]
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The source video carried along its ``dense_tracks`` into the cameras ``w2c (V, T, 4, 4)``, ``K (V, T, 3, 3)``
    (pixels of the source's size), splatted at ``size`` from the video's own frames read again at that size
    (``Source.at``): at the depth maps' resolution one lifted pixel covers one pixel, and none of the detail the
    model's frame size averages away is lost before the splat. The one splat of ``stereo_splat`` and of
    ``source_splat``.

    Returns:
        total (V, T, 3, H', W'), mass (V, T, 1, H', W') and coverage (V, T, 1, H', W'): ``geometry.carry_frames``'s
        weighted splat and its unweighted mass, at ``size``.
    """
    (H, W), (Hs, Ws) = source.size, size
    frames, K_source = source.at(size)
    cell = None if tracks.cell is None else tracks.cell * Ws / W
    fine = replace(tracks, cell=cell)
    w2c_all = torch.cat([source.w2c[None], w2c.float()])[None]  # (1, 1 + V, T, 4, 4): view 0 the source
    K_all = torch.cat([K_source[None], resize_intrinsics(K.float(), Ws / W, Hs / H)])[None]
    paired = fine.paired(w2c_all, K_all, size)
    out = [carry_frames(frames[None], paired.tracks[:, 0], paired.visible[:, 0], paired.tracks[:, v],
                        paired.visible[:, v], paired.source_frame[:, v],
                        None if paired.weight is None else paired.weight[:, v]) for v in range(1, w2c.shape[0] + 1)]
    return tuple(torch.cat(parts) for parts in zip(*out))


def source_splat(source: Source, tracks: RealTracks, w2c: torch.Tensor, K: torch.Tensor,
                 size: tuple[int, int]) -> torch.Tensor:
    """What a pixel model's Track2View pixel path would splat of the source into cameras ``w2c (V, T, 4, 4)``,
    ``K (V, T, 3, 3)``, made from the video at ``size`` instead (``carry_source``, e.g. the geometry's resolution)
    and reduced to the source's size: the colour is the mean of the fine splat's colours (each normalised by its
    weight, as ``stereo_splat``'s) over the fine pixels some track reached; the coverage how much any track lands
    there (the fine unweighted mass summed over the pixel, at most 1, as the conditioner's own splat counts it).
    On real footage this splat is about 1 dB closer to the truth than one of the model-size frames (docs/results.md,
    issue 19).

    Returns:
        (V, T, 4, H, W): colour in [0, 1] (0 where no track lands) and coverage in [0, 1].
    """
    (H, W), (Hs, Ws) = source.size, size
    total, mass, coverage = carry_source(source, tracks, w2c, K, size)
    hit = mass > 1e-6
    colour = torch.where(hit, total / mass.clamp_min(1e-6), 0.0)  # each fine pixel's colour, as stereo_splat's
    colour, hit, coverage = (torch.nn.functional.interpolate(x.flatten(0, 1).float(), size=(H, W), mode="area")
                             .unflatten(0, x.shape[:2]) for x in (colour, hit, coverage))
    colour = (colour / hit.clamp_min(1e-6)).clamp(0, 1)  # the mean over the fine pixels a track reached
    return torch.cat([colour, (coverage * (Hs * Ws) / (H * W)).clamp(max=1.0)], 2)


def _confirmed(xy: torch.Tensor, z: torch.Tensor, geometry: SourceGeometry, tolerance: float = 0.03) -> torch.Tensor:
    """(T, N) bool: frame t sees the point, i.e. it projects inside frame t at a depth within ``tolerance``
    (relative) of frame t's supported depth there (nearest pixel)."""
    T, H, W = geometry.depth.shape
    pix = (xy + 0.5).floor().long()
    inside = (pix[..., 0] >= 0) & (pix[..., 0] < W) & (pix[..., 1] >= 0) & (pix[..., 1] < H) & (z > 0)
    index = pix[..., 1].clamp(0, H - 1) * W + pix[..., 0].clamp(0, W - 1)
    there = geometry.depth.reshape(T, -1).gather(1, index).double()
    valid = geometry.supported.reshape(T, -1).gather(1, index)
    return inside & valid & ((there - z).abs() <= tolerance * z)


def clip_source(clip, b: int = 0, view: int = 0) -> Source:
    """View ``view`` of clip ``b`` of a batched ``MultiViewClip`` as a user's source video: its frames and cameras
    (no crop; the frames are their own window)."""
    from .source import Crop

    frames = clip.video[b, view].float().cpu()
    H, W = frames.shape[-2:]
    window = (frames.clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    K = clip.K[b, view].float().cpu()
    return Source(frames, clip.w2c[b, view].float().cpu(), K, Crop((H, W), (0, 0, H, W), (H, W)), window, K, "file")


def clip_stereo_tracks(clip, source: int = 0, scene_depth: float = SCENE_DEPTH, cache: str | Path | None = None):
    """What ``mvtrack generate`` gives a model on a real video, for a batch of clips: view ``source``'s frames are the
    video (its cameras the camera file), its geometry comes from stereo over those frames alone
    (``estimate_geometry``), the scene is scaled to ``scene_depth`` and every pixel becomes a dense static track,
    paired with every view's cameras. Nothing of the other views but their cameras, nor any exact depth, is read.

    Args:
        clip: a batched ``MultiViewClip`` (video (B, V, T, 3, H, W), w2c, K).
        cache: a directory where each clip's geometry is kept under its engine seed (``meta["seed"]``), so runs on the
            same clips estimate it once.

    Returns:
        ``(PairedTracks`` of (B, V, T, N) with N = T H W, ``scale (B,)`` the factor each clip's cameras must be
        multiplied by (``scale_cameras``) to be in the scene units the tracks are in).
    """
    from .paired import PairedTracks

    B, V, T, _, H, W = clip.video.shape
    paired, scales = [], []
    for b in range(B):
        src = clip_source(clip, b, source)
        w2c, K = src.w2c, src.K
        seed = clip.meta[b].get("seed") if isinstance(clip.meta, list) and isinstance(clip.meta[b], dict) else None
        path = Path(cache) / f"{seed}_{H}x{W}_v{source}.npz" if cache is not None and seed is not None else None
        geometry = _load_geometry(path) if path is not None and path.is_file() else None
        if geometry is None:
            geometry = estimate_geometry(src)  # no parallax: no valid pixel, every track of weight FILLED_WEIGHT
            if path is not None:
                _save_geometry(path, geometry)
        factor = scene_scale(geometry, scene_depth)
        scaled = src.with_cameras(scale_cameras(w2c, factor), K, "file")
        tracks = dense_tracks(scaled, geometry.scaled(factor))
        pair = tracks.paired(scale_cameras(clip.w2c[b:b + 1].float().cpu(), factor), clip.K[b:b + 1].float().cpu(),
                             (H, W), source)
        if geometry.mode == "none":  # no depth (no parallax): no tracks, the model runs camera-only on this clip
            pair.visible = torch.zeros_like(pair.visible)
        paired.append(pair)
        scales.append(factor)
    stack = {k: torch.cat([getattr(p, k) for p in paired]) for k in ("tracks", "depth", "visible", "source_frame",
                                                                       "weight")}
    return PairedTracks(stack["tracks"], stack["depth"], stack["visible"], source, stack["source_frame"],
                        stack["weight"]), torch.tensor(scales)


def _save_geometry(path: Path, geometry: SourceGeometry) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **{k: getattr(geometry, k).numpy() for k in ("depth", "K", "confidence", "valid", "supported",
                                                                  "moving")}, mode=np.array(geometry.mode))
    tmp.replace(path)  # whole or absent: a run killed while writing leaves no half file


def _load_geometry(path: Path) -> SourceGeometry | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            fields = {k: torch.from_numpy(data[k]) for k in ("depth", "K", "confidence", "valid", "supported",
                                                             "moving")}
            return SourceGeometry(**fields, mode=str(data["mode"]))
    except (OSError, ValueError, KeyError):  # a damaged entry is estimated again
        return None
