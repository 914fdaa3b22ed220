"""A user's source video as a model sees it: frames centre-cropped to the model's aspect ratio and resized, the
cameras of the crop, a depth file cut like the frames, and target cameras that follow the same crop.

Every command that reads a source video (``generate``, ``tracks``, the real-footage benchmark) goes through
``load_source``; target camera files go through ``target_cameras``, so a camera file's intrinsics are turned into
pixels of the crop in one place. A camera file describes the whole frame of the video it came with (RealEstate10K's
normalised intrinsics); the crop keeps a window of it, and resizing scales it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import torch

from mvtrack.geometry import (
    c2w_to_w2c,
    center_crop_box,
    crop_intrinsics,
    from_spec,
    invert_rigid,
    make_intrinsics,
    read_re10k,
    resize_intrinsics,
    w2c_to_c2w,
)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# FFmpeg "decodes" almost anything (a text file becomes frames of rendered text), so the suffix decides
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".mpeg", ".ogv", ".flv", ".wmv")
CAMERA_SOURCES = ("file", "estimated", "default")


@dataclass(frozen=True)
class Crop:
    """The window of a source frame that a model sees: ``box = (y0, x0, h, w)`` of a ``source = (H0, W0)`` frame,
    resized to ``size = (H, W)``; ``center_crop`` makes the largest centred window with the aspect ratio of ``size``,
    so that nothing is stretched."""

    source: tuple[int, int]
    box: tuple[int, int, int, int]
    size: tuple[int, int]

    @classmethod
    def center(cls, source: tuple[int, int], size: tuple[int, int]) -> Crop:
        return cls(tuple(source), center_crop_box(source, size), tuple(size))

    def resized(self, size: tuple[int, int]) -> Crop:
        """The same window resized to another size (its aspect ratio should match the window's)."""
        return replace(self, size=tuple(size))

    def intrinsics(self, K: torch.Tensor) -> torch.Tensor:
        """Pixel intrinsics ``(..., 3, 3)`` of the whole ``source`` frame -> those of the cropped, resized frame."""
        return crop_intrinsics(K, self.box, self.size)

    def frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, H0, W0, C) images -> (T, H, W, C): the window, area-resized (anti-aliased)."""
        y0, x0, h, w = self.box
        H, W = self.size
        return np.stack([cv2.resize(np.ascontiguousarray(f[y0:y0 + h, x0:x0 + w]), (W, H),
                                    interpolation=cv2.INTER_AREA).reshape(H, W, -1) for f in frames])

    def depth(self, depth: torch.Tensor) -> torch.Tensor:
        """(T, H0, W0) depth -> (T, H, W): the window, nearest-neighbour resized, so no depth is blended across a
        silhouette and nothing is stretched."""
        y0, x0, h, w = self.box
        window = depth[:, y0:y0 + h, x0:x0 + w]
        return torch.nn.functional.interpolate(window[:, None].float(), size=self.size, mode="nearest-exact")[:, 0]


# Horizontal field of view of a source without a camera file (--fov), in degrees: a 1 degree view is a 2000 mm lens
# on a full-frame camera, 179 degrees the widest a pinhole camera comes close to.
FOV_RANGE = (1.0, 179.0)


def check_fov(fov_degrees: float, name: str = "--fov") -> float:
    """``fov_degrees`` when it is a finite number in ``FOV_RANGE``, else a ``ValueError`` naming ``name``."""
    lo, hi = FOV_RANGE
    if isinstance(fov_degrees, bool) or not isinstance(fov_degrees, (int, float)) \
            or not (math.isfinite(fov_degrees) and lo <= fov_degrees <= hi):
        raise ValueError(f"{name} {fov_degrees}: expected a horizontal field of view in [{lo:g}, {hi:g}] degrees")
    return float(fov_degrees)


def default_intrinsics(num_frames: int, size: tuple[int, int], fov_degrees: float) -> torch.Tensor:
    """(T, 3, 3) pixel intrinsics of a centred pinhole with horizontal field of view ``fov_degrees`` (``check_fov``)."""
    check_fov(fov_degrees)
    H, W = size
    f = (W / 2) / math.tan(math.radians(fov_degrees) / 2)
    K = make_intrinsics(torch.tensor(f), torch.tensor(f), torch.tensor((W - 1) / 2), torch.tensor((H - 1) / 2))
    return K.expand(num_frames, 3, 3).clone()


def read_frames(path: str | Path, num_frames: int | None = None, indices: list[int] | None = None) -> np.ndarray:
    """Frames of a video file, an image, or a folder of images (sorted by name): (T, H0, W0, 3) uint8 RGB.

    ``indices`` picks frames (after the first ``num_frames``, if given); errors name the file and what was expected.
    """
    from mvtrack.viz.video import read_video

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"frames {path}: not found")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"frames {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        needed = len(files) if num_frames is None else num_frames
        frames = [_read_image(p) for p in files[:needed]]
    elif path.suffix.lower() in IMAGE_SUFFIXES:
        frames = [_read_image(path)]
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        frames = list(read_video(path)[:num_frames])
    else:
        raise ValueError(f"frames {path}: expected a video ({', '.join(VIDEO_SUFFIXES)}), an image "
                         f"({', '.join(IMAGE_SUFFIXES)}) or a folder of images")
    if num_frames is not None and len(frames) < num_frames:
        raise ValueError(f"frames {path}: expected at least {num_frames} frames, got {len(frames)}")
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise ValueError(f"frames {path}: expected frames of one size, got {sorted(shapes)}")
    if indices is not None:
        if not indices or min(indices) < 0 or max(indices) >= len(frames):
            raise ValueError(f"frames {path}: frame indices {indices} outside its {len(frames)} frames")
        frames = [frames[i] for i in indices]
    return np.stack(frames)


def _read_image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"image {path}: cannot be decoded")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class Source:
    """A source video at a model's size.

    frames: (T, 3, H, W) float in [0, 1], the crop resized; w2c: (T, 4, 4) OpenCV world-to-camera; K: (T, 3, 3)
    pixel intrinsics of the H x W frames. ``window`` is the crop at the video's own resolution (T, h, w, 3) uint8,
    for estimators that want more pixels than the model (``at``). ``cameras`` says where the cameras come from
    (one of ``CAMERA_SOURCES``) and ``note`` why, when they are not from a file. ``depth``: (T, H, W) from a depth
    file, cut like the frames, or None. ``K_full``: (T, 3, 3) intrinsics of the whole source frame.
    """

    frames: torch.Tensor
    w2c: torch.Tensor
    K: torch.Tensor
    crop: Crop
    window: np.ndarray
    K_full: torch.Tensor
    cameras: str = "file"
    note: str = ""
    depth: torch.Tensor | None = None
    path: Path | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.crop.size

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    def at(self, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The frames (T, 3, H', W') in [0, 1] and intrinsics (T, 3, 3) of the same crop at another size."""
        crop = self.crop.resized(size)
        H, W = size
        frames = np.stack([cv2.resize(f, (W, H), interpolation=cv2.INTER_AREA) for f in self.window])
        return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255, crop.intrinsics(self.K_full)

    def with_cameras(self, w2c: torch.Tensor, K_full: torch.Tensor, cameras: str, note: str = "") -> Source:
        """The same frames with other cameras (``K_full`` of the whole source frame)."""
        return replace(self, w2c=w2c.float(), K_full=K_full.float(), K=self.crop.intrinsics(K_full.float()),
                       cameras=cameras, note=note)


def load_source(
    video: str | Path,
    size: tuple[int, int],
    num_frames: int | None = None,
    cameras: str | Path | None = None,
    depth: str | Path | None = None,
    fov: float = 55.0,
    mirrored: str = "relative",
    indices: list[int] | None = None,
) -> Source:
    """Read a source video for a model of frame ``size = (H, W)``: the one loader of every command.

    Args:
        video: a video file, an image, or a folder of images.
        size: the model's (H, W); the frames are centre-cropped to its aspect ratio, then area-resized.
        num_frames: the first this many frames (and cameras); None: all the camera file has, else all the video has.
        cameras: a RealEstate10K camera file of the video (intrinsics of its whole frame); None: a static camera
            with horizontal field of view ``fov`` (``Source.cameras == "default"``; ``estimate_cameras`` replaces it).
        depth: a depth file (``.npy`` / ``.npz``, (T, H0, W0) z-depth at the video's size or resized to it), cut
            like the frames and nearest-resized.
        mirrored: how a camera file with a mirrored world is read (``read_re10k``).
        indices: frames to keep (after ``num_frames``), e.g. every other frame; cameras and depth follow.

    Returns:
        ``Source``. ``ValueError`` / ``FileNotFoundError`` naming the file and what was expected otherwise.
    """
    from .real_tracks import load_depth

    H, W = size
    if isinstance(H, bool) or int(H) != H or int(W) != W or H < 1 or W < 1:
        raise ValueError(f"size: expected positive integers (H, W), got {size}")
    cams = None
    if cameras is not None:
        cams = read_re10k(cameras, mirrored=mirrored)
        num_frames = num_frames or len(cams)
        if len(cams) < num_frames:
            raise ValueError(f"camera file {cameras}: expected at least {num_frames} frames, got {len(cams)}")
    raw = read_frames(video, num_frames)  # (T0, H0, W0, 3)
    T = len(raw)
    crop = Crop.center(raw.shape[1:3], size)
    keep = list(range(T)) if indices is None else list(indices)
    if not keep or min(keep) < 0 or max(keep) >= T:
        raise ValueError(f"frames {video}: frame indices {keep} outside its {T} frames")
    y0, x0, h, w = crop.box
    window = np.ascontiguousarray(raw[keep, y0:y0 + h, x0:x0 + w])
    frames = torch.from_numpy(crop.frames(raw[keep])).permute(0, 3, 1, 2).float() / 255
    if cams is not None:
        w2c, K_full, kind, note = cams.w2c[:T][keep].float(), cams.K(*crop.source)[:T][keep].float(), "file", ""
    else:
        H0, W0 = crop.source
        w2c = torch.eye(4).expand(len(keep), 4, 4).clone()
        K_full = crop_inverse(default_intrinsics(len(keep), size, fov), crop)
        kind, note = "default", f"no camera file: a static camera with a {fov:g} degree field of view"
    source_depth = None
    if depth is not None:
        full = load_depth(depth, T, *crop.source)  # (T, H0, W0), any other size nearest-resized to the video's
        source_depth = crop.depth(full[keep])
    return Source(frames, w2c, crop.intrinsics(K_full), crop, window, K_full, kind, note, source_depth, Path(video))


def crop_inverse(K: torch.Tensor, crop: Crop) -> torch.Tensor:
    """Intrinsics of the whole source frame whose crop has pixel intrinsics ``K (..., 3, 3)``."""
    y0, x0, h, w = crop.box
    out = resize_intrinsics(K, w / crop.size[1], h / crop.size[0])
    out[..., 0, 2] += x0
    out[..., 1, 2] += y0
    return out


def camera_file(spec: str) -> tuple[Path, int] | None:
    """``(path, first frame)`` of a target spec that names a camera file (``FILE`` or ``FILE@N``), else ``None``."""
    path, at, first = spec.rpartition("@")
    if at and first.isdigit() and Path(path).is_file():
        return Path(path), int(first)
    return (Path(spec), 0) if Path(spec).is_file() else None


def target_cameras(
    spec: str,
    source: Source,
    generator: torch.Generator | None = None,
    absolute: bool = False,
    center_depth: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """A target view's ``(w2c (T, 4, 4), K (T, 3, 3))`` from a RealEstate10K file or a named trajectory (``orbit:30``).

    ``FILE@N`` takes a file's cameras from its frame ``N`` on (e.g. the cameras of the frames after the source's, in
    the source's own file, to re-render held-out frames of a static scene).

    A file's intrinsics describe the whole frame of its video, which is taken to be the source's size: they follow
    the source's crop and resize exactly as the source's own intrinsics do. Its poses are taken relative to its own
    first camera and placed at the source's first camera (its motion, not its world, is what a file from another
    video can share), unless ``absolute``: then they are poses in the source's world, as written. A file with a
    mirrored world can only be used relative (``read_re10k``).

    A named trajectory starts at the source's first camera and keeps its intrinsics; orbits and arcs turn about a
    point ``center_depth`` ahead of it (the scene's depth; the generators' default without it).
    """
    T = source.num_frames
    if (file := camera_file(spec)) is not None:
        path, start = file
        cams = read_re10k(path, mirrored="error" if absolute else "relative")
        if len(cams) < start + T:
            raise ValueError(f"target camera file {path}: expected at least {start + T} frames (from frame {start}), "
                             f"got {len(cams)}")
        w2c = cams.w2c[start:start + T].float()
        if not absolute:
            w2c = w2c @ invert_rigid(w2c[:1]) @ source.w2c[:1].float()
        return w2c, source.crop.intrinsics(cams.K(*source.crop.source)[start:start + T].float())
    if "/" in spec or spec.endswith(".txt"):
        raise FileNotFoundError(f"target camera file {spec}: not found")
    name = spec.partition(":")[0]
    kwargs = {"distance": center_depth} if center_depth is not None and name in ("orbit", "arc") else {}
    c2w = from_spec(spec, w2c_to_c2w(source.w2c[0].double()), T, generator=generator, **kwargs)
    return c2w_to_w2c(c2w).float(), source.K.clone()
