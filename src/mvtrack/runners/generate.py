"""Inputs of ``mvtrack generate``: frames from a video file or a folder, cameras from files or named
trajectories, and the grid of results."""

from __future__ import annotations

import math
import os
from pathlib import Path

import cv2
import numpy as np
import torch

from mvtrack.geometry import (
    c2w_to_w2c,
    from_spec,
    invert_rigid,
    make_intrinsics,
    read_re10k,
    resize_intrinsics,
    w2c_to_c2w,
)
from mvtrack.viz import read_video

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# FFmpeg "decodes" almost anything (a text file becomes frames of rendered text), so the suffix decides
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
MAX_SIDE = 4096  # pixels per side of a generated frame
MAX_FRAMES = 1024
# Rough working memory of sampling per generated pixel (video, rays, latents, activations; float32), used to
# refuse sizes that cannot fit before anything is allocated.
BYTES_PER_PIXEL = 256


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_generation_size(views: int, frames: int, size: tuple[int, int], memory: int | None = None) -> None:
    """Refuse a generation whose frames or working memory cannot fit, before anything is read or allocated.

    Raises ``ValueError`` naming ``--frames`` / ``--size`` and the reason (a hard limit, or the estimated
    memory against the machine's).
    """
    H, W = size
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"--frames {frames}: expected 1 to {MAX_FRAMES} frames per view")
    if not (1 <= H <= MAX_SIDE and 1 <= W <= MAX_SIDE):
        raise ValueError(f"--size {H}x{W}: expected 1 to {MAX_SIDE} pixels per side")
    memory = machine_memory() if memory is None else memory
    need = views * frames * H * W * BYTES_PER_PIXEL
    if memory and need > memory // 2:
        raise ValueError(
            f"--size {H}x{W} with {frames} frames and {views} views: sampling needs about {need / 2**30:.0f} GiB of "
            f"working memory, more than half of this machine's {memory / 2**30:.0f} GiB; pass a smaller --size or "
            "fewer --frames"
        )


def center_crop_box(source: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)``: the largest centred window of a ``source = (H0, W0)`` frame with the aspect ratio of
    ``size = (H, W)``; resizing it to ``size`` keeps the scene's proportions."""
    (H0, W0), (H, W) = source, size
    if H0 * W >= W0 * H:  # source taller than the target: crop rows
        h, w = max(1, round(W0 * H / W)), W0
    else:
        h, w = H0, max(1, round(H0 * W / H))
    return (H0 - h) // 2, (W0 - w) // 2, h, w


def crop_intrinsics(K: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Pixel intrinsics ``(..., 3, 3)`` of a source frame after cutting ``box`` and resizing it to ``size``."""
    y0, x0, h, w = box
    out = K.clone()
    out[..., 0, 2] = K[..., 0, 2] - x0
    out[..., 1, 2] = K[..., 1, 2] - y0
    return resize_intrinsics(out, size[1] / w, size[0] / h)


def load_frames(path: str | Path, num_frames: int, size: tuple[int, int]) -> torch.Tensor:
    """The first ``num_frames`` frames of a video file, an image, or a folder of images (sorted by name),
    centre-cropped to the aspect ratio of ``size = (H, W)`` and resized to it (``load_frames_cropped`` also
    returns the source size and the crop, which intrinsics of the source need).

    Returns:
        (T, 3, H, W) float in [0, 1].
    """
    return load_frames_cropped(path, num_frames, size)[0]


def load_frames_cropped(path: str | Path, num_frames: int, size: tuple[int, int]):
    """``(frames (T, 3, H, W) in [0, 1], source size (H0, W0), crop box (y0, x0, h, w))``; see ``load_frames``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frames {path}: not found")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"frames {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        frames = [_read_image(p) for p in files[:num_frames]]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        frames = [_read_image(path)]
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        frames = list(read_video(path)[:num_frames])
    else:
        raise ValueError(f"frames {path}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image "
                         f"({', '.join(IMAGE_SUFFIXES)}) or a folder of images")
    if len(frames) < num_frames:
        raise ValueError(f"frames {path}: expected at least {num_frames} frames, got {len(frames)}")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames {path}: expected frames of one size, got {sorted(shapes)}")
    H, W = size
    source = frames[0].shape[:2]
    y0, x0, h, w = box = center_crop_box(source, size)
    resized = np.stack([cv2.resize(np.ascontiguousarray(f[y0 : y0 + h, x0 : x0 + w]), (W, H),
                                   interpolation=cv2.INTER_AREA) for f in frames])  # (T, H, W, 3)
    return torch.from_numpy(resized).permute(0, 3, 1, 2).float() / 255, source, box


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path}: cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def default_intrinsics(num_frames: int, size: tuple[int, int], fov_degrees: float) -> torch.Tensor:
    """(T, 3, 3) pixel intrinsics of a centred pinhole with horizontal field of view ``fov_degrees``."""
    if not (math.isfinite(fov_degrees) and 0 < fov_degrees < 180):
        raise ValueError(f"--fov {fov_degrees}: expected a horizontal field of view between 0 and 180 degrees "
                         "(exclusive)")
    H, W = size
    f = (W / 2) / math.tan(math.radians(fov_degrees) / 2)
    K = make_intrinsics(torch.tensor(f), torch.tensor(f), torch.tensor((W - 1) / 2), torch.tensor((H - 1) / 2))
    return K.expand(num_frames, 3, 3).clone()


def source_cameras(
    path: str | Path | None,
    num_frames: int,
    size: tuple[int, int],
    fov_degrees: float,
    crop: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None,
    mirrored: str = "relative",
):
    """``(w2c (T, 4, 4), K (T, 3, 3))`` from a RealEstate10K file, or a static identity camera if ``path`` is None.

    ``crop = (source size (H0, W0), box)`` from ``load_frames_cropped``: the file's intrinsics describe the whole
    source frame, so they follow the centre crop. A file with a mirrored world is read relative to its first
    camera (``mirrored="relative"``, see ``read_re10k``) or refused (``"error"``).
    """
    if path is None:
        return torch.eye(4).expand(num_frames, 4, 4).clone(), default_intrinsics(num_frames, size, fov_degrees)
    cams = read_re10k(path, mirrored=mirrored)
    if len(cams) < num_frames:
        raise ValueError(f"camera file {path}: expected at least {num_frames} frames, got {len(cams)}")
    if crop is None:
        K = cams.K(*size)
    else:
        K = crop_intrinsics(cams.K(*crop[0]), crop[1], size)
    return cams.w2c[:num_frames].float(), K[:num_frames].float()


def target_cameras(
    spec: str,
    source_w2c: torch.Tensor,
    source_K: torch.Tensor,
    size: tuple[int, int],
    generator: torch.Generator | None = None,
    absolute: bool = False,
):
    """A target view's ``(w2c, K)`` from a RealEstate10K file or a named trajectory (``orbit:30``).

    A named trajectory starts at the source's first camera and keeps its intrinsics. A file's poses are taken
    relative to its own first camera and placed at the source's first camera (its motion, not its world, is
    what a file from another video can share), unless ``absolute``: then they are poses in the source's world,
    as written. A file with a mirrored world can only be used relative (``read_re10k``).
    """
    T = source_w2c.shape[0]
    if Path(spec).is_file():
        cams = read_re10k(spec, mirrored="error" if absolute else "relative")
        if len(cams) < T:
            raise ValueError(f"target camera file {spec}: expected at least {T} frames, got {len(cams)}")
        w2c = cams.w2c[:T].float()
        if not absolute:
            w2c = w2c @ invert_rigid(w2c[:1]) @ source_w2c[:1].float()
        return w2c, cams.K(*size)[:T].float()
    if "/" in spec or spec.endswith(".txt"):
        raise FileNotFoundError(f"target camera file {spec}: not found")
    c2w = from_spec(spec, w2c_to_c2w(source_w2c[0].double()), T, generator=generator)
    return c2w_to_w2c(c2w).float(), source_K.clone()


def conditioning_tracks(
    model,
    frames: torch.Tensor,
    w2c: torch.Tensor,
    K: torch.Tensor,
    depth: str | Path | None = None,
    tracks3d: str | Path | None = None,
    cameras_known: bool = True,
    crop: tuple[tuple[int, int], tuple[int, int, int, int]] | None = None,
    min_tracks: int = 16,
) -> tuple[torch.Tensor | None, torch.Tensor | None, str]:
    """The source's 3D tracks for a Track2View model, by the most honest means the inputs allow.

    (d) a ``tracks3d`` or ``depth`` file; else (c) flow tracks triangulated with the source cameras when a camera
    file gave them (a default static camera has no parallax to triangulate from); else none, and the model runs
    camera-only. Models without a conditioner get none.

    Args:
        model: the pipeline's transformer.
        frames: (T, 3, H, W) source frames in [0, 1]; w2c: (T, 4, 4); K: (T, 3, 3) of the source.
        crop: ``(source size, box)`` from ``load_frames_cropped``: a depth file at the video's own size (or
            resized to it) is cut like the frames, then resized to (H, W) by nearest neighbour.

    Returns:
        points (1, T, N, 3), known (1, T, N) (both None without tracks) and a sentence saying what was used.
    """
    from mvtrack.data import load_depth, source_tracks

    if getattr(model, "conditioner", None) is None:
        if depth is not None or tracks3d is not None:
            return None, None, "this model has no track conditioner: --depth / --tracks3d are ignored"
        return None, None, ""
    if depth is None and tracks3d is None and not cameras_known:
        return None, None, ("no --cameras, --depth or --tracks3d: the source's 3D tracks cannot be recovered, so "
                            "this Track2View model runs without tracks (camera-only)")
    if depth is not None and crop is not None:
        (H0, W0), (y0, x0, h, w) = crop
        full = load_depth(depth, frames.shape[0], H0, W0)[:, y0 : y0 + h, x0 : x0 + w]  # (T, h, w)
        depth = torch.nn.functional.interpolate(full[:, None], size=frames.shape[-2:], mode="nearest")[:, 0]
    found = source_tracks(frames, w2c, K, depth=depth, tracks3d=tracks3d, grid_step=2)  # about as dense as training
    points, known, mode = found
    usable = int(known.any(1).sum())
    if usable < min_tracks:
        return None, None, (f"only {usable} source tracks could be placed in 3D ({mode}): running without tracks "
                            "(camera-only); a --depth or --tracks3d file gives more")
    return points, known, f"Track2View tracks: {usable} source tracks in 3D ({mode})"
