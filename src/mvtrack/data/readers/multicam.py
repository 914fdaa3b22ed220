"""MultiCamVideo (ReCamMaster's synchronised multi-camera Unreal renders) as multi-view clips, k cameras per sample.

Layout (ReCamMaster README, "File Structure"; dataset card huggingface.co/datasets/KwaiVGI/MultiCamVideo-Dataset)::

    MultiCamVideo-Dataset/train/f18_aperture10/scene1/videos/cam01.mp4 ... cam10.mp4   (81 frames, 1280x1280)
                                                     /cameras/camera_extrinsics.json
    MultiCamVideo-Dataset/val/10basic_trajectories/{videos,cameras}/...

``camera_extrinsics.json`` maps ``"frame{i}"`` -> ``"cam{NN}"`` -> ``"[r r r 0] [r r r 0] [r r r 0] [x y z 1] "``,
Unreal's row-vector transform (location in cm). Cameras follow ReCamMaster's conversion exactly
(``mvtrack.geometry.unreal``, which cites the lines it follows), in a right-handed world, metres. Intrinsics: the
focal length in the folder name (``f18_...`` = 18 mm) over the 23.76 x 23.76 mm sensor (README, "Camera
Configurations"; JianhongBai in KwaiVGI/ReCamMaster issue 10), principal point at the centre; after the crop and
resize, fx and fy follow the cut window and the two scale factors (``geometry.crop.crop_intrinsics``).
ReCamMaster's loader samples cameras at random (``random.randint(1, 10)``, condition != target) and uses poses
relative to the condition camera's first frame; here view 0 plays the condition camera.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import torch

from mvtrack.geometry import invert_rigid
from mvtrack.geometry.crop import crop_intrinsics
from mvtrack.geometry.unreal import MULTICAM_SENSOR_MM, intrinsics_from_sensor, unreal_to_opencv

from ..clip import MultiViewClip
from .base import (ReaderDataset, check_sampling, check_size, crop_box, crop_resize, frame_indices,
                   read_video_frames)

CAMERA_FILE = Path("cameras") / "camera_extrinsics.json"
_FOCAL_FOLDER = re.compile(r"^f(\d+(?:\.\d+)?)_aperture")
_CAMERA_VIDEO = re.compile(r"^cam(\d+)\.mp4$")
_ROW = re.compile(r"\[([^\[\]]*)\]")


def find_scenes(root: str | Path, max_depth: int = 4) -> list[Path]:
    """Scene folders (holding ``cameras/camera_extrinsics.json``) at or under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"MultiCamVideo root {root}: not a directory")
    scenes, stack = [], [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        if (folder / CAMERA_FILE).is_file():
            scenes.append(folder)
            continue
        if depth < max_depth:
            with os.scandir(folder) as entries:
                stack += [(Path(e.path), depth + 1) for e in entries
                          if e.is_dir() and e.name not in ("videos", "cameras")]
    return sorted(scenes)


def focal_from_folder(scene: Path) -> float | None:
    """The focal length in mm named by the nearest folder ``f{mm}_aperture{...}`` at or above ``scene``."""
    for folder in [scene, *scene.resolve().parents]:
        match = _FOCAL_FOLDER.match(folder.name)
        if match:
            return float(match.group(1))
    return None


def parse_unreal_matrix(text, where: str) -> torch.Tensor:
    """(4, 4) float64 of one ``"[a b c d] [e f g h] [i j k l] [m n o p] "`` string; ``ValueError`` naming ``where``."""
    if not isinstance(text, str):
        raise ValueError(f"{where}: expected a string of 4 bracketed rows, got {type(text).__name__}")
    rows = _ROW.findall(text)
    try:
        values = [[float(x) for x in row.split()] for row in rows]
    except ValueError:
        raise ValueError(f"{where}: {text.strip()!r} holds something that is not a number") from None
    if len(values) != 4 or any(len(r) != 4 for r in values):
        raise ValueError(f"{where}: expected 4 bracketed rows of 4 numbers, got {text.strip()!r}")
    if not all(math.isfinite(x) for r in values for x in r):
        raise ValueError(f"{where}: {text.strip()!r} contains NaN or inf")
    return torch.tensor(values, dtype=torch.float64)


def format_unreal_matrix(matrix: torch.Tensor) -> str:
    """The JSON string of a (4, 4) Unreal matrix, every number at full float64 precision (``repr``)."""
    return "".join("[" + " ".join(repr(float(x)) for x in row) + "] " for row in matrix.tolist())


def read_camera_file(path: str | Path) -> dict:
    """The parsed ``camera_extrinsics.json``, its frames checked to be ``frame0 ... frame{T-1}``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"camera file {path}: not found") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"camera file {path}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not data:
        raise ValueError(f"camera file {path}: expected an object of frame0, frame1, ... entries")
    expected = [f"frame{i}" for i in range(len(data))]
    if set(data) != set(expected):
        odd = sorted(set(data) - set(expected)) or sorted(set(expected) - set(data))
        raise ValueError(f"camera file {path}: expected keys frame0 ... frame{len(data) - 1}, got {odd[:3]}")
    return data


def camera_w2c(data: dict, camera: int, indices: list[int], path: Path) -> torch.Tensor:
    """OpenCV ``w2c (T, 4, 4)`` float64 of camera ``camera`` at frame ``indices`` of a parsed camera file."""
    key = f"cam{camera:02d}"
    matrices = []
    for i in indices:
        frame = data[f"frame{i}"]
        if not isinstance(frame, dict) or key not in frame:
            raise ValueError(f"camera file {path}: frame{i} has no {key}")
        matrices.append(parse_unreal_matrix(frame[key], f"camera file {path}: frame{i}/{key}"))
    return unreal_to_opencv(torch.stack(matrices), name=f"camera file {path}: {key}")


class MultiCamVideo(ReaderDataset):
    """MultiCamVideo scenes as ``MultiViewClip``s of ``views`` synchronised cameras.

    Args:
        root: the dataset folder, ``train/``, one ``f{mm}_aperture{...}`` folder or one scene; every folder holding
            ``cameras/camera_extrinsics.json`` up to 4 levels down is a scene.
        size: output ``(H, W)`` (or one int for square); ``crop="center"`` cuts the largest centred window of that
            aspect first (ReCamMaster: resize, then centre-crop), ``"stretch"`` resizes the whole frame.
        num_frames, stride, start: frames ``start, start + stride, ...``; ``start`` is ``"random"``, ``"first"``
            or an index (ReCamMaster: 81 frames from 0 at stride 1).
        views: cameras per sample, drawn at random without repetition (view 0 is the condition camera).
        cameras: fixed camera numbers instead (e.g. ``[1, 5]``), in view order.
        focal_mm: focal length for scenes whose folders do not name one (``val/10basic_trajectories``); it
            overrides the folder's when given.
        relative: poses relative to view 0's first sampled frame (ReCamMaster), else in the scene's world.
        samples_per_scene: samples per scene and epoch (each draws its own cameras and start).
        seed, shuffle, skip_errors: see ``ReaderDataset``.

    Samples: video (V, T, 3, H, W) float in [0, 1], w2c (V, T, 4, 4) OpenCV in metres, K (V, T, 3, 3) pixels of the
    output size, no tracks (N = 0); ``meta`` names the scene, cameras, frames and focal length.
    """

    def __init__(self, root: str | Path, size=(480, 832), num_frames: int = 81, stride: int = 1, start="first",
                 views: int = 2, cameras: list[int] | None = None, focal_mm: float | None = None,
                 sensor_mm: float = MULTICAM_SENSOR_MM, crop: str = "center", relative: bool = True,
                 samples_per_scene: int = 1, seed: int = 0, shuffle: bool = True, skip_errors: bool = False):
        self.root = Path(root)
        self.size = check_size(size)
        check_sampling(num_frames, stride, start)
        crop_box((1, 1), (1, 1), crop)  # validates the name
        if cameras is not None:
            if not cameras or len(set(cameras)) != len(cameras) or not all(
                    isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in cameras):
                raise ValueError(f"cameras: expected distinct camera numbers (e.g. [1, 5]), got {cameras!r}")
        elif isinstance(views, bool) or not isinstance(views, int) or views < 1:
            raise ValueError(f"views: expected an integer >= 1, got {views!r}")
        if focal_mm is not None and not focal_mm > 0:
            raise ValueError(f"focal_mm: expected a positive focal length in mm, got {focal_mm!r}")
        if not sensor_mm > 0:
            raise ValueError(f"sensor_mm: expected a positive sensor size in mm, got {sensor_mm!r}")
        if isinstance(samples_per_scene, bool) or not isinstance(samples_per_scene, int) or samples_per_scene < 1:
            raise ValueError(f"samples_per_scene: expected an integer >= 1, got {samples_per_scene!r}")
        self.num_frames, self.stride, self.start = num_frames, stride, start
        self.views, self.cameras, self.sensor_mm = views, cameras, sensor_mm
        self.crop, self.relative = crop, relative
        items = []
        for scene in find_scenes(self.root):
            focal = focal_mm if focal_mm is not None else focal_from_folder(scene)
            if focal is None:
                raise ValueError(f"MultiCamVideo scene {scene}: no folder f{{mm}}_aperture{{...}} names its focal "
                                 "length; pass focal_mm")
            items += [(scene, focal)] * samples_per_scene
        if not items:
            raise ValueError(f"MultiCamVideo root {self.root}: no scene (a folder with {CAMERA_FILE}) found")
        super().__init__(items, seed=seed, shuffle=shuffle, skip_errors=skip_errors)

    def available_cameras(self, scene: Path) -> list[int]:
        """Camera numbers with a ``videos/camNN.mp4`` in ``scene``, sorted."""
        videos = scene / "videos"
        if not videos.is_dir():
            raise FileNotFoundError(f"MultiCamVideo scene {scene}: no videos/ folder")
        return sorted(int(m.group(1)) for m in map(_CAMERA_VIDEO.match, os.listdir(videos)) if m)

    def load(self, item, generator: torch.Generator) -> MultiViewClip:
        scene, focal = item
        # 1. cameras of this sample
        available = self.available_cameras(scene)
        if self.cameras is not None:
            missing = [c for c in self.cameras if c not in available]
            if missing:
                raise FileNotFoundError(f"MultiCamVideo scene {scene}: no videos/cam{missing[0]:02d}.mp4")
            chosen = list(self.cameras)
        else:
            if len(available) < self.views:
                raise ValueError(f"MultiCamVideo scene {scene}: {len(available)} camera videos, expected at least "
                                 f"views = {self.views}")
            chosen = [available[i] for i in torch.randperm(len(available), generator=generator)[: self.views].tolist()]
        # 2. frames and cameras from the JSON
        path = scene / CAMERA_FILE
        data = read_camera_file(path)
        indices = frame_indices(len(data), self.num_frames, self.stride, self.start, generator, f"camera file {path}")
        w2c = torch.stack([camera_w2c(data, c, indices, path) for c in chosen])  # (V, T, 4, 4) float64
        if self.relative:
            w2c = w2c @ invert_rigid(w2c[0, 0])
        # 3. frames, cut and resized; intrinsics follow the cut of each view
        videos, K, boxes, sources = [], [], [], []
        for c in chosen:
            frames = read_video_frames(scene / "videos" / f"cam{c:02d}.mp4", indices)  # (T, H0, W0, 3)
            source = frames.shape[1:3]
            box = crop_box(source, self.size, self.crop)
            videos.append(crop_resize(frames, box, self.size))
            K.append(crop_intrinsics(intrinsics_from_sensor(focal, *source, (self.sensor_mm, self.sensor_mm)), box,
                                     self.size))
            boxes.append(list(box))
            sources.append(list(source))
        V, T = len(chosen), len(indices)
        meta = {"dataset": "MultiCamVideo", "scene": str(scene.relative_to(self.root)) if scene != self.root else ".",
                "cameras": chosen, "frames": indices, "focal_mm": focal, "source_size": sources, "crop_box": boxes}
        return MultiViewClip(
            video=torch.stack(videos), w2c=w2c.float(), K=torch.stack(K).float()[:, None].expand(V, T, 3, 3).clone(),
            tracks=torch.zeros(V, T, 0, 2), visible=torch.zeros(V, T, 0, dtype=torch.bool), meta=meta,
        )
