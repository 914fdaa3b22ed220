"""Real-looking footage with known cameras, for checking the camera metrics where no internet (and so no
RealEstate10K clip) is at hand: a room whose floor, walls, ceiling and a free-standing panel carry photographs
(scikit-image's bundled sample images), ray-cast at 2x and area-downsampled, seen by a camera moving as in
RealEstate10K clips (walking forward, sideways, turning). Dominant planes and forward motion are what real
indoor footage looks like and what broke the old planar guard.

Numpy only, and a ray-caster of its own (textured rectangles) beside the engine's torch one: the two could share one.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MOTIONS = ("forward", "sideways", "arc", "forward_turn", "wall", "slow_turn")


@dataclass
class _Rect:
    corner: np.ndarray  # (3,) world point of texture pixel (0, 0)
    u: np.ndarray  # (3,) world edge along texture x
    v: np.ndarray  # (3,) world edge along texture y
    texture: np.ndarray  # (h, w, 3) float32 in [0, 1]


def _textures() -> list[np.ndarray]:
    try:
        from skimage import data
    except ImportError as e:  # pragma: no cover - a dev dependency
        raise ImportError("photo-textured footage needs scikit-image (pip install scikit-image)") from e

    def rgb(x):
        x = x[..., :3] if x.ndim == 3 else np.repeat(x[..., None], 3, -1)
        return x.astype(np.float32) / 255

    return [rgb(np.tile(data.gravel(), (2, 2))), rgb(data.astronaut()), rgb(data.coffee()), rgb(data.rocket()),
            rgb(data.chelsea()), rgb(data.brick()), rgb(data.stereo_motorcycle()[0]), rgb(data.hubble_deep_field())]


def _room() -> list[_Rect]:
    """OpenCV world (x right, y down, z forward); the camera starts at the origin looking along +z."""
    floor, astro, coffee, rocket, cat, brick, moto, hubble = _textures()
    a = np.array
    return [
        _Rect(a([-3.0, 1.5, 0.0]), a([6.0, 0, 0]), a([0, 0, 9.0]), floor),  # floor
        _Rect(a([-3.0, -1.5, 9.0]), a([3.0, 0, 0]), a([0, 3.0, 0]), astro),  # back wall, left half
        _Rect(a([0.0, -1.5, 9.0]), a([3.0, 0, 0]), a([0, 3.0, 0]), coffee),  # back wall, right half
        _Rect(a([-3.0, -1.5, 0.0]), a([0, 0, 9.0]), a([0, 3.0, 0]), rocket),  # left wall
        _Rect(a([3.0, -1.5, 9.0]), a([0, 0, -9.0]), a([0, 3.0, 0]), cat),  # right wall
        _Rect(a([-3.0, -1.5, 0.0]), a([6.0, 0, 0]), a([0, 0, 9.0]), brick),  # ceiling
        _Rect(a([0.2, -0.6, 4.5]), a([1.4, 0, 0.5]), a([0, 1.0, 0]), moto),  # free-standing panel
        _Rect(a([-1.6, 0.1, 3.5]), a([0.9, 0, -0.3]), a([0, 0.9, 0]), hubble),  # a second, nearer panel
    ]


def _yaw(degrees: float) -> np.ndarray:
    c, s = np.cos(np.deg2rad(degrees)), np.sin(np.deg2rad(degrees))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def camera_path(motion: str, frames: int) -> np.ndarray:
    """(T, 4, 4) world-to-camera of a RealEstate10K-like move inside the room (metres, degrees)."""
    if motion not in MOTIONS:
        raise ValueError(f"motion: expected one of {MOTIONS}, got {motion!r}")
    w2c = np.tile(np.eye(4), (frames, 1, 1))
    for t, a in enumerate(np.linspace(0, 1, frames)):
        if motion == "forward":
            centre, yaw = np.array([0.0, 0.0, 1.2 * a]), 0.0
        elif motion == "sideways":
            centre, yaw = np.array([-0.8 + 1.2 * a, 0.1, 0.5]), -4 + 8 * a
        elif motion == "arc":  # around the panel at (0.9, 0, 4.8)
            ang = np.deg2rad(-12 + 24 * a)
            centre = np.array([0.9, 0.0, 4.8]) - 4.0 * np.array([np.sin(ang), 0.0, np.cos(ang)])
            yaw = np.rad2deg(ang)
        elif motion == "forward_turn":
            centre, yaw = np.array([0.3 * a, 0.0, 1.0 * a]), 15 * a
        elif motion == "wall":  # close to the back wall, which fills the view: a planar scene
            centre, yaw = np.array([-0.9 + 0.4 * a, 0.0, 6.8]), 5 - 6 * a
        else:  # small motion, mostly a turn: weak parallax, as in many real clips
            centre, yaw = np.array([0.1 * a, 0.0, 2.0 + 0.1 * a]), -10 + 20 * a
        R_c2w = _yaw(yaw)
        w2c[t, :3, :3] = R_c2w.T
        w2c[t, :3, 3] = -R_c2w.T @ centre
    return w2c


def render_photo_scene(motion: str = "forward", frames: int = 8, size: int = 256, fov_deg: float = 60.0,
                       supersample: int = 2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render the photo-textured room along ``motion``.

    Returns:
        frames (T, size, size, 3) uint8, w2c (T, 4, 4), K (3, 3) pixel intrinsics (pixel centres at integers).
    """
    rects = _room()
    w2c = camera_path(motion, frames)
    S = size * supersample
    f = 0.5 * S / np.tan(np.deg2rad(fov_deg) / 2)
    ys, xs = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
    dirs_cam = np.stack([(xs - (S - 1) / 2) / f, (ys - (S - 1) / 2) / f, np.ones_like(xs, float)], -1)  # (S, S, 3)
    out = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        R, tr = w2c[t, :3, :3], w2c[t, :3, 3]
        origin = -R.T @ tr
        d = dirs_cam @ R  # (S, S, 3) world directions: R^T d_cam
        depth = np.full((S, S), np.inf)
        image = np.zeros((S, S, 3), np.float32)
        for r in rects:
            n = np.cross(r.u, r.v)
            denom = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                s = ((r.corner - origin) @ n) / denom
            X = origin + s[..., None] * d - r.corner
            a = X @ r.u / (r.u @ r.u)
            b = X @ r.v / (r.v @ r.v)
            hit = (s > 1e-6) & (s < depth) & (a >= 0) & (a <= 1) & (b >= 0) & (b <= 1)
            if not hit.any():
                continue
            h, w = r.texture.shape[:2]
            mx, my = (a * (w - 1)).astype(np.float32), (b * (h - 1)).astype(np.float32)
            sample = cv2.remap(r.texture, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            image[hit] = sample[hit]
            depth[hit] = s[hit]
        small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        out[t] = (np.clip(small, 0, 1) * 255).round().astype(np.uint8)
    fs = f / supersample
    K = np.array([[fs, 0, (size - 1) / 2], [0, fs, (size - 1) / 2], [0, 0, 1.0]])
    return out, w2c, K


def resize_clip(frames: np.ndarray, K: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Area-downsample ``frames (T, H, W, 3)`` uint8 to ``size`` x ``size``; K scaled in our pixel convention."""
    H, W = frames.shape[1:3]
    sx, sy = size / W, size / H
    small = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    K = K.copy()
    K[0, 0], K[1, 1] = K[0, 0] * sx, K[1, 1] * sy
    K[0, 2], K[1, 2] = (K[0, 2] + 0.5) * sx - 0.5, (K[1, 2] + 0.5) * sy - 0.5
    return small, K
