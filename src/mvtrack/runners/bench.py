"""``mvtrack bench``: the held-out synthetic split written as an ``mvtrack eval`` ground-truth folder, a method's
re-renderings of it, and their scores.

The split (``configs/bench/heldout.yaml``, documented in ``docs/evaluation.md``) is a list of groups (static or
dynamic scenes, small or wide baselines); clip i of the split is rendered from ``clip_seed(seed, i, "test")``,
a stream training never draws from. View 0 is observed; views 1.. are to be generated along their true cameras.

Methods: ``model`` (an mvtrack checkpoint or preset) and the reference rows ``ground_truth`` (the true target
videos: the metrics' ceiling and the noise floor of the estimators), ``copy_source``, ``depth_warp`` (the source
warped with true depth: an upper reference no model can use) and ``noise`` (uniform noise: chance level).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import yaml

from mvtrack.data import MultiViewClip
from mvtrack.evaluation import copy_source, depth_warp
from mvtrack.geometry import write_re10k
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4

REFERENCE_METHODS = ("ground_truth", "copy_source", "depth_warp", "noise")
TRANSLATING_MOTIONS = ("orbit", "arc", "dolly", "random")  # COLMAP cannot reconstruct a static or rotating camera


@dataclass
class SplitGroup:
    name: str
    clips: int
    baseline: str = "small"  # small | wide
    dynamic: bool = False  # objects move (dynamic_prob 1) or the scene is static (dynamic_prob 0)


@dataclass
class BenchConfig:
    name: str = "heldout"
    seed: int = 0
    views: int = 2
    frames: int = 8
    height: int = 64
    width: int = 64
    num_tracks: int = 64
    camera_motions: tuple = TRANSLATING_MOTIONS
    groups: list = field(default_factory=list)

    def __post_init__(self):
        self.groups = [g if isinstance(g, SplitGroup) else SplitGroup(**g) for g in self.groups]
        if not self.groups:
            raise ValueError("BenchConfig.groups: expected at least one group")
        for g in self.groups:
            if g.clips < 1 or g.baseline not in ("small", "wide"):
                raise ValueError(f"BenchConfig.groups[{g.name}]: expected clips >= 1 and baseline small or wide, got "
                                 f"{g.clips}, {g.baseline!r}")
        if self.views < 2:
            raise ValueError(f"BenchConfig.views: expected >= 2 (view 0 is observed), got {self.views}")
        self.camera_motions = tuple(self.camera_motions)

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark config: no file at {path}")
        raw = yaml.safe_load(path.read_text()) or {}
        names = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) - names:
            raise ValueError(f"{path}: expected a mapping with keys among {sorted(names)}, got {raw!r:.200}")
        return cls(**raw)

    def clip_configs(self) -> list[tuple[str, SynthConfig]]:
        """(group name, engine config) of every clip of the split, in order."""
        out = []
        for g in self.groups:
            cfg = SynthConfig(views=self.views, frames=self.frames, height=self.height, width=self.width,
                              num_tracks=self.num_tracks, baseline=g.baseline, dynamic_prob=float(g.dynamic),
                              camera_motions=self.camera_motions)
            out += [(g.name, cfg)] * g.clips
        return out


def render_split(config: BenchConfig) -> list[tuple[str, MultiViewClip]]:
    """(group, clip) for every clip of the split; clip i comes from ``clip_seed(config.seed, i, "test")``."""
    return [(group, render_clips(cfg, [clip_seed(config.seed, i, "test")]))
            for i, (group, cfg) in enumerate(config.clip_configs())]


def clip_name(i: int) -> str:
    return f"clip_{i:04d}"


def write_ground_truth(config: BenchConfig, out_dir: str | Path, progress: Callable[[], None] | None = None) -> Path:
    """Write the split as an ``mvtrack eval`` ground-truth folder (videos, camera files, annotations.npz with
    depth and tracks, meta.json) and ``split.json``; reuse it when ``split.json`` already matches the config."""
    out = Path(out_dir)
    stamp = json.dumps(asdict(config), sort_keys=True, default=list)
    if (out / "split.json").is_file() and (out / "split.json").read_text() == stamp:
        return out
    if out.exists():
        shutil.rmtree(out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, (group, clip) in enumerate(render_split(config)):
        d = tmp / clip_name(i)
        for v in range(config.views):
            write_mp4(d / f"view_{v}.mp4", to_uint8_frames(clip.video[0, v]))
            write_re10k(d / f"view_{v}.txt", clip.w2c[0, v], clip.K[0, v], config.height, config.width)
        np.savez_compressed(d / "annotations.npz", depth=clip.depth[0].numpy().astype(np.float32),
                            tracks=clip.tracks[0].numpy().astype(np.float32), visible=clip.visible[0].numpy())
        (d / "meta.json").write_text(json.dumps({"group": group, **clip.meta[0]}, indent=1, default=str))
        if progress is not None:
            progress()
    (tmp / "split.json").write_text(stamp)
    tmp.rename(out)
    return out


def reference_prediction(method: str, clip: MultiViewClip, view: int, seed: int = 0) -> np.ndarray:
    """A reference method's view ``view`` of a single-clip batch: uint8 (T, H, W, 3)."""
    video = clip.video[0].double().numpy()
    if method == "ground_truth":
        pred = video[view]
    elif method == "copy_source":
        pred = copy_source(video[0])
    elif method == "depth_warp":
        d, w, K = (x[0].double().numpy() for x in (clip.depth, clip.w2c, clip.K))
        pred = depth_warp(video[0], d[view], w[0], K[0], w[view], K[view])
    elif method == "noise":
        pred = np.random.default_rng(seed).random(video[view].shape)
    else:
        raise ValueError(f"method: expected one of {REFERENCE_METHODS} or a model, got {method!r}")
    return to_uint8_frames(torch.from_numpy(np.asarray(pred)).float())


def write_predictions(
    config: BenchConfig,
    out_dir: str | Path,
    method: str = "model",
    pipe=None,
    steps: int = 25,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
) -> Path:
    """Re-render every clip of the split with ``method`` (``model`` needs ``pipe``, a MultiViewPipeline) into an
    ``mvtrack eval`` prediction folder: ``<clip>/view_<v>.mp4`` for v >= 1. Clip i's sampling noise is seeded
    ``seed + i``."""
    out = Path(out_dir)
    for i, (_, clip) in enumerate(render_split(config)):
        if method == "model":
            if pipe is None:
                raise ValueError("method model: a pipeline is needed")
            video = pipe(clip.w2c, clip.K, clip.video, "rerender", num_inference_steps=steps,
                         generator=torch.Generator().manual_seed(seed + i)).video.cpu()
            preds = {v: to_uint8_frames(video[0, v]) for v in range(1, config.views)}
        else:
            preds = {v: reference_prediction(method, clip, v, seed + i) for v in range(1, config.views)}
        for v, frames in preds.items():
            write_mp4(out / clip_name(i) / f"view_{v}.mp4", frames)
        if progress is not None:
            progress()
    return out
