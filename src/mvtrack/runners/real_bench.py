"""The real-footage benchmark: a folder of RealEstate10K-format clips (``<id>.mp4`` + ``<id>.txt``) as an
``mvtrack eval`` split. The scenes are static, so the frames left out of the source are the truth of their cameras.

Tasks (``RealSplit.task``), on the first ``frames`` frames of each clip:
    near: the even frames are the source, the odd frames' cameras the targets (interpolation between source views);
    far:  the first half is the source, the second half's cameras the targets (the camera moves on past the source);
    own:  the even frames are the source and their own cameras the targets (a check: the output should be the
          source; a camera file whose intrinsics ignore the crop, or a model that does not keep its source, shows).
Every clip is centre-cropped to the split's aspect ratio and resized (its intrinsics following), the truth too.

Reference rows: ``copy_source`` (source frame t as target frame t), ``nearest_source`` (the source frame whose camera
centre is nearest each target camera), ``stereo_splat`` (no learning: plane-sweep stereo of the source frames with
their cameras, every pixel of every source frame splatted into the target camera, holes inpainted) and
``ground_truth``. Models re-render the source along the target cameras exactly as ``mvtrack generate`` does
(``prepare_source`` + ``rerender_video``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mvtrack.defaults import SAMPLING_STEPS
from mvtrack.data import load_source
from mvtrack.data.source import Source
from mvtrack.data.source_geometry import SourceGeometry
from mvtrack.geometry import camera_centers, write_re10k
from mvtrack.runners.references import stereo_splat
from mvtrack.viz import to_uint8_frames, write_mp4

TASKS = ("near", "far", "own")
REAL_REFERENCE_METHODS = ("ground_truth", "copy_source", "nearest_source", "stereo_splat")


@dataclass
class RealSplit:
    """A folder of RealEstate10K-format clips as a re-rendering split (see the module docstring)."""

    name: str
    root: str
    task: str = "near"
    frames: int = 16
    height: int = 64
    width: int = 64
    clips: int | None = None  # the first this many clips (sorted by name); None: all
    views: int = 2
    observed: str = "rerender"
    reference_methods: tuple = REAL_REFERENCE_METHODS

    def __post_init__(self):
        from .bench import safe_name

        safe_name(self.name, "split name")
        if self.task not in TASKS:
            raise ValueError(f"split {self.name}: task: expected one of {TASKS}, got {self.task!r}")
        for key in ("frames", "height", "width"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < (4 if key == "frames" else 8):
                raise ValueError(f"split {self.name}: {key}: expected an integer >= {4 if key == 'frames' else 8}, "
                                 f"got {value!r}")
        if self.clips is not None and (isinstance(self.clips, bool) or not isinstance(self.clips, int)
                                       or self.clips < 1):
            raise ValueError(f"split {self.name}: clips: expected a positive integer or null, got {self.clips!r}")
        if not Path(self.root).is_dir():
            raise FileNotFoundError(f"split {self.name}: root {self.root}: not a directory")
        if not self.clip_ids():
            raise ValueError(f"split {self.name}: root {self.root}: no clips (<id>.mp4 beside <id>.txt)")

    def clip_ids(self) -> list[str]:
        """Clip names: ``<id>`` with both ``<id>.mp4`` and ``<id>.txt`` in ``root``, sorted."""
        root = Path(self.root)
        ids = sorted(p.stem for p in root.glob("*.mp4") if (root / f"{p.stem}.txt").is_file())
        return ids[: self.clips] if self.clips is not None else ids

    def num_clips(self) -> int:
        return len(self.clip_ids())

    def indices(self) -> tuple[list[int], list[int]]:
        """(source frames, target frames) of the task."""
        T = self.frames
        if self.task == "near":
            return list(range(0, T, 2)), list(range(1, T, 2))
        if self.task == "own":
            return list(range(0, T, 2)), list(range(0, T, 2))
        return list(range(T // 2)), list(range(T // 2, T))

    def describe(self) -> str:
        return (f"{self.name}: {self.num_clips()} real clips ({self.task}: {len(self.indices()[0])} source frames, "
                f"{len(self.indices()[1])} target cameras), {self.height}x{self.width}")

    def load(self, clip: str) -> tuple[Source, Source]:
        """(source, target) of one clip at the split's size; the target's frames are the truth."""
        video, cameras = Path(self.root) / f"{clip}.mp4", Path(self.root) / f"{clip}.txt"
        src, tgt = self.indices()
        size = (self.height, self.width)
        return (load_source(video, size, self.frames, cameras, mirrored="error", indices=src),
                load_source(video, size, self.frames, cameras, mirrored="error", indices=tgt))

    def write_ground_truth(self, out_dir: str | Path, progress=None) -> Path:
        """The split as an ``mvtrack eval`` ground-truth folder: per clip, ``view_0`` the source and ``view_1`` the
        truth of the target cameras (MP4 + RealEstate10K camera file at the split's size); reused when unchanged."""
        out = Path(out_dir)
        stamp = json.dumps({"real": self.root, "task": self.task, "frames": self.frames, "size": [self.height,
                            self.width], "clips": self.clip_ids()}, sort_keys=True)
        if (out / "split.json").is_file() and (out / "split.json").read_text() == stamp:
            return out
        for clip in self.clip_ids():
            source, target = self.load(clip)
            d = out / clip
            for v, s in enumerate((source, target)):
                write_mp4(d / f"view_{v}.mp4", to_uint8_frames(s.frames))
                write_re10k(d / f"view_{v}.txt", s.w2c, s.K, self.height, self.width)
            (d / "meta.json").write_text(json.dumps({"group": self.task, "clip": clip, "source_frames":
                                                     self.indices()[0], "target_frames": self.indices()[1]}))
            if progress is not None:
                progress()
        out.mkdir(parents=True, exist_ok=True)
        (out / "split.json").write_text(stamp)
        return out

    def write_predictions(self, out_dir: str | Path, method: str = "model", pipe=None, steps: int = SAMPLING_STEPS,
                          seed: int = 0, progress=None, sensitivity: bool = False, views_per_group=None,
                          model_dir: str | None = None) -> Path:
        """Run ``method`` (a reference row or ``model`` with ``pipe``) on every clip: ``<clip>/view_1.mp4``."""
        from .generate import prepare_source, rerender_video

        if sensitivity:
            raise ValueError(f"split {self.name}: camera sensitivity needs the engine's clips (a synthetic split)")
        if method != "model" and method not in self.reference_methods:
            raise ValueError(f"split {self.name}: method {method!r}: expected a model or one of "
                             f"{self.reference_methods}")
        out = Path(out_dir)
        for i, clip in enumerate(self.clip_ids()):
            source, target = self.load(clip)
            if method == "model":
                if pipe is None:
                    raise ValueError("method model: a pipeline is needed")
                inputs = prepare_source(source, pipe.transformer, model_dir)
                cams = [(_scaled(target.w2c, inputs.scale), target.K)]
                video = rerender_video(pipe, inputs, cams, steps, seed + i)[0]
            else:
                video = reference_video(method, source, target)
            write_mp4(out / clip / "view_1.mp4", to_uint8_frames(video))
            if progress is not None:
                progress()
        return out


def _scaled(w2c: torch.Tensor, factor: float) -> torch.Tensor:
    from mvtrack.data.source_geometry import scale_cameras

    return scale_cameras(w2c, factor)


def reference_video(method: str, source: Source, target: Source, geometry: SourceGeometry | None = None
                    ) -> torch.Tensor:
    """A reference row's video of the target cameras, (T, 3, H, W) in [0, 1]."""
    if method == "ground_truth":
        return target.frames
    if method == "copy_source":
        return source.frames
    if method == "nearest_source":
        distance = (camera_centers(target.w2c.double())[:, None] - camera_centers(source.w2c.double())[None]).norm(dim=-1)
        return source.frames[distance.argmin(-1)]
    if method == "stereo_splat":
        return stereo_splat(source, target, geometry)
    raise ValueError(f"method: expected one of {REAL_REFERENCE_METHODS}, got {method!r}")


def write_contact_sheet(path: str | Path, gt_dir: str | Path, predictions: dict[str, Path], max_clips: int = 12
                        ) -> Path | None:
    """One row per clip (at most ``max_clips``): its middle frame as the source, each method's ``view_1``, and the
    truth, labelled (``viz.contact_sheet``). None when no clip has every video."""
    from mvtrack.viz import contact_sheet, read_video

    rows = []
    for clip in sorted(p for p in Path(gt_dir).iterdir() if p.is_dir())[:max_clips]:
        files = [clip / "view_0.mp4"] + [d / clip.name / "view_1.mp4" for d in predictions.values()] + \
                [clip / "view_1.mp4"]
        if all(f.is_file() for f in files):
            videos = [read_video(f) for f in files]
            rows.append([v[len(videos[0]) // 2] for v in videos])
    if not rows:
        return None
    return contact_sheet(path, rows, ["source"] + list(predictions) + ["truth"], scale=3)
