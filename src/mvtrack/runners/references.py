"""Reference methods of the re-rendering benchmarks that need no learning: copy the source view, splat it along
the paired tracks a Track2View model is given, or along the stereo geometry ``generate`` uses on real video. (The true-depth warp, an upper reference, is
``mvtrack.evaluation.depth_warp``: the warp-PSNR metric uses it too.)"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mvtrack.data.source import Source
from mvtrack.data.source_geometry import SourceGeometry, carry_source, clip_source, dense_tracks, estimate_geometry
from mvtrack.geometry import carry_frames


def copy_source(source: np.ndarray) -> np.ndarray:
    """The trivial baseline: predict the target view as the source view, frame by frame. (T, 3, H, W)."""
    return np.array(source, copy=True)


def track_splat(source: np.ndarray, source_xy: np.ndarray, target_xy: np.ndarray, weight: np.ndarray,
                source_frame: np.ndarray | None = None) -> np.ndarray:
    """The ``source-depth splat`` reference: forward-splat the source frames along paired tracks, with no learning.

    Each track carries the source pixel at its source position (bilinear) to its target position (bilinear splat,
    normalised by weight) frame by frame (``geometry.carry_frames``, as Track2View's pixel path does); pixels no
    track reaches are filled by OpenCV's Telea inpainting. Fed the same paired tracks as a Track2View model, it
    shows what geometry alone gives; the model should beat it where splatting leaves holes.

    Args:
        source: (T, 3, H, W) in [0, 1].
        source_xy, target_xy: (T, N, 2) pixels of each track in the source and target view.
        weight: (T, N), 1 where the track is seen in the source (at its colour frame) and visible in the target,
            else 0; any non-negative weight.
        source_frame: (T, N) int, the source frame each track's colour is read from at each target frame (static
            points); None: the same frame.

    Returns:
        (T, 3, H, W) float32 in [0, 1].
    """
    frames = torch.tensor(np.asarray(source, np.float32))[None]  # copies: inputs may be read-only views
    T, _, H, W = frames.shape[1:]
    xy_s, xy_t = (torch.tensor(np.asarray(x, np.float32))[None] for x in (source_xy, target_xy))
    ones = torch.ones(1, T, xy_s.shape[2], dtype=torch.bool)
    frame = None if source_frame is None else torch.tensor(np.asarray(source_frame, np.int64))[None]
    total, mass, _ = carry_frames(frames, xy_s, ones, xy_t, ones, frame,
                                 torch.tensor(np.asarray(weight, np.float32))[None])
    return inpaint_holes((total / mass.clamp_min(1e-6))[0].clamp(0, 1).numpy(), (mass[0, :, 0] < 1e-3).numpy())


def inpaint_holes(frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill ``holes (T, H, W)`` of ``frames (T, 3, H, W)`` in [0, 1] by OpenCV's Telea inpainting (8-bit); a frame
    that is all hole is returned as it is. (T, 3, H, W) float32."""
    out = []
    for image, hole in zip(frames, holes):
        image = (np.moveaxis(image, 0, -1) * 255).round().astype(np.uint8)
        if hole.any() and not hole.all():
            image = cv2.inpaint(image, hole.astype(np.uint8), 3, cv2.INPAINT_TELEA)
        out.append(np.moveaxis(image, -1, 0).astype(np.float32) / 255)
    return np.stack(out)


def stereo_splat(source: Source, target: Source, geometry: SourceGeometry | None = None) -> torch.Tensor:
    """The classical reference, no learning: every pixel of every source frame lifted with the source's stereo depth
    (``dense_tracks``: confirmed pixels with weight 1, completed ones less), forward-splatted into each target camera
    at the depth maps' resolution with a z-buffer and a preference for source cameras near the target's
    (``paired_tracks``), holes inpainted (Telea), then area-resized to the target's size.

    Args:
        source, target: ``load_source`` results of one scene (the target's frames are not read).
        geometry: the source's ``estimate_geometry`` (computed when None).

    Returns:
        (T, 3, H, W) float32 in [0, 1].
    """
    geometry = geometry if geometry is not None else estimate_geometry(source)
    if not geometry.supported.any():  # no depth at all: nothing to splat, the source is the best guess
        return source.frames
    size = tuple(geometry.depth.shape[-2:])
    tracks = dense_tracks(source, geometry)  # every pixel; confirmed ones weigh more
    total, mass, _ = carry_source(source, tracks, target.w2c[None], target.K[None], size)
    image = (total / mass.clamp_min(1e-6))[0].clamp(0, 1).numpy()
    filled = torch.from_numpy(inpaint_holes(image, (mass[0, :, 0] < 1e-4).numpy()))
    return F.interpolate(filled, size=source.size, mode="area").clamp(0, 1)


def clip_stereo_splat(clip, view: int) -> np.ndarray:
    """The ``stereo_splat`` reference for view ``view`` of a single-clip batch: view 0 as a video with its cameras,
    splatted with its stereo geometry into view ``view``'s cameras (``stereo_splat``). (T, 3, H, W) float32."""
    return stereo_splat(clip_source(clip, 0, 0), clip_source(clip, 0, view)).numpy()
