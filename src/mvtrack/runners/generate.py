"""Inputs of ``mvtrack generate``: frames from a video file or a folder, cameras from files or named
trajectories, and the grid of results."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch

from mvtrack.geometry import c2w_to_w2c, from_spec, make_intrinsics, read_re10k, w2c_to_c2w
from mvtrack.viz import read_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def load_frames(path: str | Path, num_frames: int, size: tuple[int, int]) -> torch.Tensor:
    """The first ``num_frames`` frames of a video file, an image, or a folder of images (sorted by name),
    resized to ``size = (H, W)`` (no crop: normalised intrinsics stay valid).

    Returns:
        (T, 3, H, W) float in [0, 1].
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"frames {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        frames = [_read_image(p) for p in files[:num_frames]]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        frames = [_read_image(path)]
    else:
        frames = list(read_video(path)[:num_frames])
    if len(frames) < num_frames:
        raise ValueError(f"frames {path}: expected at least {num_frames} frames, got {len(frames)}")
    H, W = size
    resized = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in frames])  # (T, H, W, 3)
    return torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path}: cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def default_intrinsics(num_frames: int, size: tuple[int, int], fov_degrees: float) -> torch.Tensor:
    """(T, 3, 3) pixel intrinsics of a centred pinhole with horizontal field of view ``fov_degrees``."""
    H, W = size
    f = (W / 2) / math.tan(math.radians(fov_degrees) / 2)
    K = make_intrinsics(torch.tensor(f), torch.tensor(f), torch.tensor((W - 1) / 2), torch.tensor((H - 1) / 2))
    return K.expand(num_frames, 3, 3).clone()


def source_cameras(path: str | Path | None, num_frames: int, size: tuple[int, int], fov_degrees: float):
    """``(w2c (T, 4, 4), K (T, 3, 3))`` from a RealEstate10K file, or a static identity camera if ``path`` is None."""
    if path is None:
        return torch.eye(4).expand(num_frames, 4, 4).clone(), default_intrinsics(num_frames, size, fov_degrees)
    cams = read_re10k(path)
    if len(cams) < num_frames:
        raise ValueError(f"camera file {path}: expected at least {num_frames} frames, got {len(cams)}")
    return cams.w2c[:num_frames].float(), cams.K(*size)[:num_frames].float()


def target_cameras(
    spec: str,
    source_w2c: torch.Tensor,
    source_K: torch.Tensor,
    size: tuple[int, int],
    generator: torch.Generator | None = None,
):
    """A target view's ``(w2c, K)`` from a RealEstate10K file or a named trajectory (``orbit:30``) that starts
    at the source's first camera and keeps its intrinsics."""
    T = source_w2c.shape[0]
    if Path(spec).is_file():
        cams = read_re10k(spec)
        if len(cams) < T:
            raise ValueError(f"target camera file {spec}: expected at least {T} frames, got {len(cams)}")
        return cams.w2c[:T].float(), cams.K(*size)[:T].float()
    if "/" in spec or spec.endswith(".txt"):
        raise FileNotFoundError(f"target camera file {spec}: not found")
    c2w = from_spec(spec, w2c_to_c2w(source_w2c[0].double()), T, generator=generator)
    return c2w_to_w2c(c2w).float(), source_K.clone()
