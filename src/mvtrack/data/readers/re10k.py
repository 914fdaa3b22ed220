"""RealEstate10K in CameraCtrl's layout as monocular clips (one view, known cameras, no tracks).

Layout (CameraCtrl README, "Dataset"; ``tools/generate_realestate_json.py``; hehao13/CameraCtrl, read at commit
af45a7a)::

    RealEstate10k/annotations/{train,validation,test}.json   list of {"clip_name", "clip_path", "pose_file", "caption"}
                 /pose_files/<clip_name>.txt                 RealEstate10K camera file, one line per video frame
                 /video_clips/<video_id>/<clip_name>.mp4     one frame per pose line (tools/get_realestate_clips.py)

Paths in the annotations are relative to the root. Cameras are read with ``geometry.read_re10k`` (normalised
intrinsics from the image corner, OpenCV world-to-camera; every field checked), and intrinsics are scaled to the
decoded video's size and follow the crop. CameraCtrl's ``RealEstate10KPose`` samples ``sample_n_frames`` at
``sample_stride`` from a random start and, when a clip is too short, a smaller stride; here the stride is shortened
to the largest that fits (recorded in ``meta["stride"]``). CameraCtrl resizes without keeping the aspect ratio
(``crop="stretch"`` here, fx and fy scaled apart); the default ``"center"`` crops first. A clip feeds CVD's
homography pseudo-views (``data.homography_pseudo_views``) like any one-view clip.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mvtrack.geometry import invert_rigid, read_re10k
from mvtrack.geometry.crop import crop_intrinsics

from ..clip import MultiViewClip
from .base import ReaderDataset, check_sampling, check_size, crop_box, crop_resize, frame_indices, read_video_frames


def read_annotations(path: str | Path) -> list[dict]:
    """Entries of a CameraCtrl annotation file, each checked to name its ``clip_path`` and ``pose_file``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path}: not found")
    try:
        entries = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"annotation file {path}: not valid JSON ({e})") from None
    if not isinstance(entries, list):
        raise ValueError(f"annotation file {path}: expected a list of clips, got {type(entries).__name__}")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("clip_path", "pose_file")):
            raise ValueError(f"annotation file {path}: entry {i}: expected an object with string clip_path and "
                             f"pose_file, got {str(entry)[:80]}")
        if not isinstance(entry.get("caption", ""), str):
            raise ValueError(f"annotation file {path}: entry {i}: expected caption to be a string")
    return entries


class RealEstate10K(ReaderDataset):
    """CameraCtrl-layout RealEstate10K clips as one-view ``MultiViewClip``s.

    Args:
        root: the folder holding ``annotations/``, ``pose_files/`` and ``video_clips/``.
        split: annotation file ``annotations/{split}.json``, or a path to one.
        size, crop: output ``(H, W)``; ``"center"`` (crop to the aspect, then resize) or ``"stretch"`` (CameraCtrl).
        num_frames, stride, start: frames ``start, start + stride, ...`` (CameraCtrl: 16 at stride 4, random
            start); a clip too short for ``stride`` is read at the largest stride that fits.
        relative: poses relative to the first sampled frame (``w2c[0]`` = identity), else as in the file.
        mirrored: how to read a camera file whose rotations all have det = -1 (``geometry.read_re10k``).
        seed, shuffle, skip_errors: see ``ReaderDataset``.

    Samples: video (1, T, 3, H, W), w2c (1, T, 4, 4) OpenCV, K (1, T, 3, 3) pixels of the output size, no tracks
    (N = 0); ``meta`` holds the clip name, caption, frame indices and stride.
    """

    def __init__(self, root: str | Path, split: str = "train", size=(256, 384), num_frames: int = 16,
                 stride: int = 4, start="random", crop: str = "center", relative: bool = True,
                 mirrored: str = "error", seed: int = 0, shuffle: bool = True, skip_errors: bool = False):
        self.root = Path(root)
        self.size = check_size(size)
        check_sampling(num_frames, stride, start)
        crop_box((1, 1), (1, 1), crop)
        self.num_frames, self.stride, self.start = num_frames, stride, start
        self.crop, self.relative, self.mirrored = crop, relative, mirrored
        path = Path(split) if str(split).endswith(".json") else self.root / "annotations" / f"{split}.json"
        self.annotations = path
        super().__init__(read_annotations(path), seed=seed, shuffle=shuffle, skip_errors=skip_errors)

    def load(self, item: dict, generator: torch.Generator) -> MultiViewClip:
        pose_file, video_file = self.root / item["pose_file"], self.root / item["clip_path"]
        cams = read_re10k(pose_file, mirrored=self.mirrored)
        stride = self.stride
        if self.num_frames > 1:  # CameraCtrl shortens the stride of clips too short for it
            stride = max(1, min(stride, (len(cams) - 1) // (self.num_frames - 1)))
        indices = frame_indices(len(cams), self.num_frames, stride, self.start, generator, f"camera file {pose_file}")
        frames = read_video_frames(video_file, indices)  # (T, H0, W0, 3)
        source = frames.shape[1:3]
        box = crop_box(source, self.size, self.crop)
        K = crop_intrinsics(cams.K(*source)[indices].double(), box, self.size)  # (T, 3, 3)
        w2c = cams.w2c[indices].double()  # (T, 4, 4)
        if self.relative:
            w2c = w2c @ invert_rigid(w2c[0])
        T = len(indices)
        meta = {"dataset": "RealEstate10K", "clip_name": item.get("clip_name", Path(item["pose_file"]).stem),
                "caption": item.get("caption", ""), "frames": indices, "stride": stride,
                "source_size": list(source), "crop_box": list(box)}
        return MultiViewClip(
            video=crop_resize(frames, box, self.size)[None], w2c=w2c.float()[None], K=K.float()[None],
            tracks=torch.zeros(1, T, 0, 2), visible=torch.zeros(1, T, 0, dtype=torch.bool), meta=meta,
        )
