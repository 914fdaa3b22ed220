"""Sampling a model on clips with ground truth (view 0 observed, the others generated), as every benchmark does it,
and the data a model was trained on (the defaults of the commands that sample it)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from mvtrack.data import source_depth_tracks
from mvtrack.data.source_geometry import clip_stereo_tracks, scale_cameras
from mvtrack.defaults import SAMPLING_STEPS
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.runners.references import track_splat
from mvtrack.training.config import DataConfig

# mvtrack.json's data keys that describe the clips a model saw (the others say where they came from)
CLIP_KEYS = ("views", "frames", "height", "width", "baseline")


def trained_data(model_dir: str | Path | None, **overrides) -> DataConfig:
    """The clips a model was trained on (``model_dir/mvtrack.json`` ``data``; ``DataConfig``'s defaults for a preset
    or a directory without it), with ``overrides`` that are not None: the sizes ``demo``, ``generate`` and the
    analyses sample it at unless told otherwise."""
    meta = Path(model_dir) / "mvtrack.json" if model_dir is not None else None
    data = json.loads(meta.read_text()).get("data", {}) if meta is not None and meta.is_file() else {}
    known = {k: v for k, v in data.items() if k in CLIP_KEYS}
    return DataConfig(**{**known, **{k: v for k, v in overrides.items() if v is not None}})


def rerender_clip(
    pipe: MultiViewPipeline, clip, steps: int = SAMPLING_STEPS, generator: torch.Generator | None = None,
    views_per_group: int | None = None,
) -> torch.Tensor:
    """Re-render one clip with view 0 observed: the generated video (1, V, T, 3, H, W) in [0, 1] on the CPU.

    ``clip`` is a single-clip batch (``MultiViewClip`` with B = 1). Every runner that samples a model on clips
    with ground truth (demo, bench) goes through here, so that conditioned models get their inputs the same way,
    the way they were trained (``pipe.track_source``): mode (b), view 0's 2D tracks lifted with view 0's depth
    (``source_depth_tracks``), or ``stereo``, what ``generate`` gives on a real video (view 0's stereo depth of its
    own frames, every pixel a track, the scene scaled: ``clip_stereo_tracks``). Nothing of the target views but
    their cameras is read. ``views_per_group``: CVD's collaborative inference (``MultiViewPipeline``), None for all
    views in one joint attention.
    """
    tracks, w2c = None, clip.w2c
    if getattr(pipe.transformer, "conditioner", None) is not None:
        if getattr(pipe, "track_source", "source_depth") == "stereo":
            tracks, scale = clip_stereo_tracks(clip)
            w2c = scale_cameras(clip.w2c, scale.to(clip.w2c)[:, None, None, None])
        else:
            tracks = source_depth_tracks(clip)
    return pipe(w2c, clip.K, clip.video, "rerender", num_inference_steps=steps, generator=generator,
                tracks=tracks, views_per_group=views_per_group).video.cpu()


def source_depth_splat(clip, view: int) -> np.ndarray:
    """The ``source_depth_splat`` reference for view ``view`` of a single-clip batch: view 0 forward-splatted along
    the mode-(b) paired tracks a Track2View model is given (``runners.references.track_splat``). (T, 3, H, W)
    float32."""
    paired = source_depth_tracks(clip)
    return track_splat(clip.video[0, 0].numpy(), paired.tracks[0, 0].numpy(), paired.tracks[0, view].numpy(),
                       (paired.visible[0, 0] & paired.visible[0, view]).numpy())
