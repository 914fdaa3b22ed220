"""Homography pseudo-views: turn a monocular clip into a synchronised multi-view clip (CVD's hybrid training).

A homography ``H = K' R K^-1`` from a pure rotation ``R`` and new intrinsics ``K'`` is exactly a second camera
that shares the source camera's centre: ``w2c' = [R | 0] @ w2c``. Every pixel at every depth maps by
``x' = H x``, so a pseudo-view comes with a real camera (Plücker rays work unchanged), exact tracks and exact
correspondences. Pixel coordinates follow mvtrack's convention (the top-left pixel centre at (0, 0)).
"""

from __future__ import annotations

import math

import torch

from ..geometry import (
    apply_homography,
    axis_angle_to_matrix,
    bilinear_sample,
    make_intrinsics,
    pixel_grid,
    rotation_homography,
)
from .clip import MultiViewClip, collate


def smooth_rotations(
    num_frames: int, generator: torch.Generator | None = None, max_degrees: float = 10.0, max_roll: float = 3.0,
    max_zoom: float = 0.15,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random rotation and zoom per frame: the motion of one pseudo-view relative to its source.

    Yaw, pitch (each within ``max_degrees``), roll (within ``max_roll``) and zoom (``1 +`` a value within
    ``max_zoom``) are drawn at the clip's start and end and eased between them with a cosine, so frame 0 is not
    the identity and the change between frames is at most ``pi / 2 / (T - 1)`` of the start-to-end change.

    Args:
        num_frames: T.
        generator: the source of randomness (None: torch's global generator).

    Returns:
        R: (T, 3, 3) rotations taking points in the source camera's frame to the pseudo camera's frame.
        zoom: (T,) factors scaling both focal lengths.
    """
    if num_frames < 1:
        raise ValueError(f"smooth_rotations: num_frames: expected >= 1, got {num_frames}")
    if not (0 <= max_degrees < 90 and 0 <= max_roll < 90 and 0 <= max_zoom < 1):
        raise ValueError(f"smooth_rotations: expected 0 <= max_degrees, max_roll < 90 and 0 <= max_zoom < 1, got "
                         f"{max_degrees}, {max_roll}, {max_zoom}")
    limits = torch.tensor([max_degrees, max_degrees, max_roll, max_zoom], dtype=torch.float64)
    ends = (2 * torch.rand(2, 4, generator=generator, dtype=torch.float64) - 1) * limits  # (2, 4) start, end
    t = torch.linspace(0, 1, num_frames, dtype=torch.float64) if num_frames > 1 else torch.zeros(1, dtype=torch.float64)
    alpha = (0.5 - 0.5 * torch.cos(math.pi * t))[:, None]  # (T, 1) cosine ease: zero speed at both ends
    yaw, pitch, roll, zoom = (ends[0] + alpha * (ends[1] - ends[0])).unbind(-1)  # (T,) each
    axes = torch.eye(3, dtype=torch.float64)  # OpenCV camera: x right (pitch), y down (yaw), z forward (roll)
    R = (axis_angle_to_matrix(axes[2].expand(num_frames, 3), roll.deg2rad())
         @ axis_angle_to_matrix(axes[0].expand(num_frames, 3), pitch.deg2rad())
         @ axis_angle_to_matrix(axes[1].expand(num_frames, 3), yaw.deg2rad()))  # (T, 3, 3)
    return R.float(), (1 + zoom).float()


def pseudo_homographies(w2c_src: torch.Tensor, K_src: torch.Tensor, w2c_dst: torch.Tensor, K_dst: torch.Tensor):
    """Homographies ``K_dst R_rel K_src^-1`` ``(..., 3, 3)`` mapping source pixels to destination pixels.

    Exact for every depth only when the two cameras share a centre (as pseudo-views do).

    Args:
        w2c_src, w2c_dst: (..., 4, 4) world-to-camera; K_src, K_dst: (..., 3, 3) pixel intrinsics.
    """
    R_rel = w2c_dst[..., :3, :3] @ w2c_src[..., :3, :3].transpose(-1, -2)
    return rotation_homography(K_src, R_rel, K_dst)


def _warp(image: torch.Tensor, H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Inverse-warp ``image (T, C, h, w)`` by homographies ``H (T, 3, 3)``: each target pixel samples the source at
    ``H^-1 x'``, bilinearly; target pixels whose source lies outside the image (or behind the camera) get 0.

    Returns the warped images (T, C, h, w), the source positions (T, h*w, 2) and their validity (T, h*w).
    """
    T, C, h, w = image.shape
    grid = pixel_grid(h, w, device=H.device, dtype=H.dtype).reshape(1, h * w, 2)
    src = torch.cat([grid, torch.ones_like(grid[..., :1])], -1) @ torch.linalg.inv(H).transpose(-1, -2)  # (T,hw,3)
    xy = src[..., :2] / src[..., 2:].where(src[..., 2:].abs() > 1e-12, torch.ones_like(src[..., 2:]))
    # The same half-pixel border as the track visibility of mvtrack.scenes; within it, the edge pixel is repeated.
    valid = ((src[..., 2] > 0) & (xy[..., 0] >= -0.5) & (xy[..., 0] < w - 0.5)
             & (xy[..., 1] >= -0.5) & (xy[..., 1] < h - 0.5))
    clamped = torch.stack([xy[..., 0].clamp(0, w - 1), xy[..., 1].clamp(0, h - 1)], -1)
    values = bilinear_sample(image, clamped) * valid[..., None]  # (T, hw, C)
    return values.transpose(1, 2).reshape(T, C, h, w).to(image.dtype), xy, valid


def _pseudo_views_one(clip: MultiViewClip, num_views: int, view: int, generator, ranges: dict) -> MultiViewClip:
    K, w2c, (h, w) = clip.K[view], clip.w2c[view], clip.size  # (T, 3, 3), (T, 4, 4)
    names = ("video", "w2c", "K", "tracks", "visible", "depth")
    out = {name: [getattr(clip, name)[view]] for name in names if getattr(clip, name) is not None}  # view 0: source
    homographies = [torch.eye(3, dtype=K.dtype, device=K.device).expand(clip.num_frames, 3, 3)]
    for _ in range(num_views - 1):
        R, zoom = smooth_rotations(clip.num_frames, generator, **ranges)  # (T, 3, 3), (T,)
        R, zoom = R.to(K), zoom.to(K)
        K_new = K.clone()
        K_new[:, :2, :2] *= zoom[:, None, None]  # focal lengths (and skew) scale; the principal point stays
        rigid = torch.eye(4, dtype=w2c.dtype, device=w2c.device).repeat(clip.num_frames, 1, 1)
        rigid[:, :3, :3] = R
        H = rotation_homography(K, R, K_new)  # (T, 3, 3)
        video, xy, valid = _warp(clip.video[view], H)
        tracks = apply_homography(H, clip.tracks[view])  # (T, N, 2)
        # (T, N, 1): the point's new z, up to scale
        w_new = clip.tracks[view] @ H[:, None, 2, :2].transpose(-1, -2) + H[:, None, 2, 2:]
        x, y = tracks.unbind(-1)
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
        out["video"].append(video)
        out["w2c"].append(rigid @ w2c)
        out["K"].append(K_new)
        out["tracks"].append(tracks)
        out["visible"].append(clip.visible[view] & inside & (w_new[..., 0] > 0))
        if clip.depth is not None:
            z, _, _ = _warp(clip.depth[view][:, None], H)  # (T, 1, h, w) source z at H^-1 x'
            ray = torch.cat([xy, torch.ones_like(xy[..., :1])], -1) @ torch.linalg.inv(K).transpose(-1, -2)  # (T,hw,3)
            z_scale = (ray @ R.transpose(-1, -2))[..., 2] * valid  # new z of a source point at depth 1
            out["depth"].append(z[:, 0] * z_scale.reshape(-1, h, w))
        homographies.append(H)
    queries = None  # queries in another view have no place in the result
    if clip.queries is not None and bool((clip.queries[:, 0] == view).all()):
        queries = torch.cat([torch.zeros_like(clip.queries[:, :1]), clip.queries[:, 1:]], 1)  # (N, 4), now view 0
    meta = {**clip.meta, "pseudo_views": {"source_view": view, "homographies": torch.stack(homographies, 0).tolist()}}
    return MultiViewClip(**{k: torch.stack(v) for k, v in out.items()}, tracks3d=clip.tracks3d, queries=queries,
                         track_instance=clip.track_instance, meta=meta)


def homography_pseudo_views(
    clip: MultiViewClip, num_views: int = 2, view: int = 0, generator: torch.Generator | None = None,
    max_degrees: float = 10.0, max_roll: float = 3.0, max_zoom: float = 0.15,
) -> MultiViewClip:
    """A multi-view clip made of one view of ``clip`` and ``num_views - 1`` rotated and zoomed pseudo-views of it.

    View 0 is ``clip``'s view ``view`` unchanged. Pseudo-view v has ``K'`` = K with its focal lengths scaled by
    a zoom, ``w2c' = [R | 0] @ w2c`` (same centre), video and depth inverse-warped by ``H = K' R K^-1`` (0 where
    the source is outside the image; depth is the new camera's z), tracks ``x' = H x``, visible where the source
    was visible and ``x'`` is inside the image in front of the camera. tracks3d and track_instance are kept;
    queries are kept (with v = 0) only if they all lie in ``view``, else dropped. ``meta["pseudo_views"]`` holds
    ``source_view`` and ``homographies`` (num_views, T, 3, 3) as nested lists, identity for view 0.

    Args:
        clip: unbatched (V, T, ...) or batched (B, V, T, ...); each clip of a batch gets its own draw.
        num_views: views of the result, >= 1.
        view: the source view of ``clip``.
        generator: the source of randomness; max_degrees, max_roll, max_zoom: see ``smooth_rotations``.

    Returns:
        A MultiViewClip with V = num_views, batched as ``clip`` is (a list of metas when batched).
    """
    if num_views < 1:
        raise ValueError(f"homography_pseudo_views: num_views: expected >= 1, got {num_views}")
    if not 0 <= view < clip.num_views:
        raise ValueError(f"homography_pseudo_views: view: expected in [0, {clip.num_views}), got {view}")
    ranges = {"max_degrees": max_degrees, "max_roll": max_roll, "max_zoom": max_zoom}
    if not clip.batched:
        return _pseudo_views_one(clip, num_views, view, generator, ranges)
    clips = [_pseudo_views_one(c, num_views, view, generator, ranges) for c in clip.unbatch()]
    if any(c.queries is None for c in clips):  # collate needs a field in all clips or none
        for c in clips:
            c.queries = None
    return collate(clips)


def monocular_clip(video: torch.Tensor, K: torch.Tensor | None = None, fov_degrees: float = 60.0) -> MultiViewClip:
    """Wrap a real monocular video as a 1-view clip, ready for ``homography_pseudo_views``.

    The source camera's own motion is unknown and treated as static (identity w2c every frame), as in CVD's WebVid
    pseudo pairs; the pseudo-views' cameras relative to it are still exact. The clip has no tracks (N = 0).

    Args:
        video: (T, 3, H, W) float in [0, 1], or uint8 in [0, 255].
        K: (3, 3) or (T, 3, 3) pixel intrinsics; default: a centred pinhole of horizontal field of view
            ``fov_degrees``.

    Returns:
        A MultiViewClip with video (1, T, 3, H, W), w2c (1, T, 4, 4), K (1, T, 3, 3), tracks (1, T, 0, 2).
    """
    if not isinstance(video, torch.Tensor) or video.dim() != 4 or video.shape[1] != 3:
        got = tuple(video.shape) if isinstance(video, torch.Tensor) else type(video).__name__
        raise ValueError(f"monocular_clip: video: expected (T, 3, H, W), got {got}")
    if video.dtype == torch.uint8:
        video = video.float() / 255
    elif not video.is_floating_point():
        raise ValueError(f"monocular_clip: video: expected a float or uint8 tensor, got {video.dtype}")
    elif not (torch.isfinite(video).all() and video.min() >= 0 and video.max() <= 1):
        raise ValueError(f"monocular_clip: video: expected values in [0, 1], got "
                         f"[{video.min():.3g}, {video.max():.3g}]")
    T, _, h, w = video.shape
    if K is None:
        if not (math.isfinite(fov_degrees) and 0 < fov_degrees < 180):
            raise ValueError(f"monocular_clip: fov_degrees: expected in (0, 180), got {fov_degrees}")
        f = (w / 2) / math.tan(math.radians(fov_degrees) / 2)
        K = make_intrinsics(f, f, (w - 1) / 2, (h - 1) / 2)
    if K.shape not in ((3, 3), (T, 3, 3)):
        raise ValueError(f"monocular_clip: K: expected (3, 3) or ({T}, 3, 3), got {tuple(K.shape)}")
    K = K.to(video.dtype).expand(T, 3, 3)
    return MultiViewClip(
        video=video[None], w2c=torch.eye(4, dtype=video.dtype, device=video.device).repeat(1, T, 1, 1),
        K=K[None].clone(), tracks=video.new_zeros(1, T, 0, 2),
        visible=torch.zeros(1, T, 0, dtype=torch.bool, device=video.device), meta={"source": "monocular"},
    )
