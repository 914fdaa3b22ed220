"""The analyses of a model's attention as a tracker, on engine clips with exact tracks: which layers (and heads)
already track (``analyze_layers``; MVTrack4Gen picks its supervised layers with it) and zero-shot tracking with a
model's features (``zero_shot_tracking``, Track4Gen 4.3.1). The commands ``analyze-layers`` and ``track-features``
print their results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.tracking.analysis import (
    LayerScore,
    as_dicts,
    attention_scores,
    merge_scores,
    plot_head_scores,
    plot_scores,
)
from mvtrack.tracking.zero_shot import FEATURES, feature_tracks, no_motion_tracks, score_feature_tracks

from .rerender import trained_data

NO_MOTION_ROW = "no motion (reference)"


def analyze_layers(pipe, model_dir: str | Path | None, out_dir: str | Path, clips: int = 8, baseline: str = "mixed",
                   sigma: float = 0.5, pairs: int = 256, seed: int = 0, frames: int | None = None,
                   size: tuple[int, int] | None = None, views: int | None = None, per_head: bool = False,
                   progress: Callable[[], None] | None = None) -> tuple[list[LayerScore], SynthConfig]:
    """Score every self-attention layer of ``pipe``'s (pixel-space) model as a tracker on ``clips`` clips of the val
    stream (never the held-out test split) at its training size (``frames``, ``size``, ``views`` override it), all
    frames noised to ``sigma``; write ``layers.json`` and ``layers.png`` (and ``heads.png`` with ``per_head``) to
    ``out_dir``. Returns the merged scores and the clips' engine config."""
    if pipe.codec.channels != 3:
        raise ValueError("layer analysis needs a pixel-space model (tracks are in pixels)")
    height, width = size or (None, None)
    data = trained_data(model_dir, frames=frames, height=height, width=width, views=views)
    config = SynthConfig(views=data.views, frames=data.frames, height=data.height, width=data.width,
                         num_tracks=pairs, baseline=baseline)
    net = pipe.transformer.eval()
    batches = []
    for i in range(clips):
        clip = render_clips(config, [clip_seed(seed, i, "val")])
        batches.append(attention_scores(net, clip, sigma=sigma, num_pairs=pairs, seed=seed + i, per_head=per_head))
        if progress is not None:
            progress()
    scores = merge_scores(batches)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = Path(str(model_dir)).name
    (out / "layers.json").write_text(json.dumps({"model": str(model_dir), "sigma": sigma, "clips": clips,
                                                 "baseline": baseline, "scores": as_dicts(scores)}, indent=1))
    plot_scores(scores, out / "layers.png", f"{name}: attention argmax as a tracker (sigma {sigma})")
    if per_head:
        plot_head_scores(scores, out / "heads.png", f"{name}: each head's argmax as a tracker")
    return scores, config


def zero_shot_tracking(pipes: dict[str, object], clips: int = 8, features: str = "qk", layer: int | None = None,
                       sigma: float = 0.3, threshold: float = 0.5, baseline: str = "mixed", seed: int = 0
                       ) -> dict[str, dict[str, float]]:
    """Track4Gen's zero-shot feature tracking of each model (``pipes[model_dir] = pipeline``) on ``clips`` held-out
    clips at its training size, scored with TAP-Vid, beside the no-motion reference on the same clips.

    Returns:
        rows[name] = mean {"AJ", "delta_avg", "OA"}: a row per model, and one reference row per distinct clip
        setting (``no motion (reference)`` when every model is sampled alike, else named by its views, frames and
        size), so that no model's reference replaces another's.
    """
    if features not in FEATURES:
        raise ValueError(f"features: expected one of {FEATURES}, got {features!r}")
    rows, references = {}, {}
    for spec, pipe in pipes.items():
        data = trained_data(spec)
        config = SynthConfig(views=data.views, frames=data.frames, height=data.height, width=data.width,
                             num_tracks=64, baseline=baseline)
        scores, reference = [], []
        for i in range(clips):
            clip = render_clips(config, [clip_seed(seed, i, "test")])
            tracks, visible, _ = feature_tracks(pipe.transformer.eval(), clip, features, layer, sigma, threshold)
            scores.append(score_feature_tracks(clip, tracks, visible))
            reference.append(score_feature_tracks(clip, *no_motion_tracks(clip)))
        rows[spec] = _mean(scores)
        key = (data.views, data.frames, data.height, data.width)
        references[key] = _mean(reference)
    if len(references) == 1:
        rows[NO_MOTION_ROW] = next(iter(references.values()))
    else:
        for (v, f, h, w), row in references.items():
            rows[f"no motion ({v} views x {f} frames, {h}x{w})"] = row
    return rows


def _mean(scores: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([x[k] for x in scores])) for k in scores[0]}
