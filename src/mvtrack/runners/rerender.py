"""Re-render held-out synthetic clips (view 0 observed, the others generated) and score them against ground
truth, beside the copy-source baseline and the ground-truth-depth warp upper reference."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mvtrack.data import collate, source_depth_tracks
from mvtrack.data.source import Source
from mvtrack.data.source_geometry import (
    SourceGeometry,
    clip_source,
    clip_stereo_tracks,
    dense_tracks,
    estimate_geometry,
    scale_cameras,
)
from mvtrack.evaluation import copy_source, depth_warp, track_splat, view_scores
from mvtrack.evaluation.rerender import inpaint_holes
from mvtrack.geometry import carry_frames
from mvtrack.outputs import check_output_dir
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import tile_views, to_uint8_frames, upscale_frames, write_mp4

METHODS = ("model", "copy_source", "source_depth_splat", "depth_warp")


@dataclass
class RerenderSettings:
    views: int = 2
    frames: int = 8
    height: int = 64
    width: int = 64
    baseline: str = "small"
    num_clips: int = 4
    seed: int = 0  # clips are clip_seed(seed, i, split)
    split: str = "test"  # test: the held-out stream; val: for choosing among checkpoints; both disjoint from train
    steps: int = 25  # denoising steps
    sample_seed: int = 0  # initial noise of clip i: torch.Generator seeded sample_seed + i
    batch: int = 1
    num_tracks: int = 2048  # view 0's tracks: what a Track2View model is given (with view 0's depth), mode (b)

    @classmethod
    def for_model(cls, model_dir: str | Path, **overrides) -> RerenderSettings:
        """Defaults from ``model_dir/mvtrack.json`` (the data a shipped model was trained on), then overrides."""
        meta = Path(model_dir) / "mvtrack.json"
        data = json.loads(meta.read_text()).get("data", {}) if meta.is_file() else {}
        known = {k: v for k, v in data.items() if k in ("views", "frames", "height", "width", "baseline")}
        return cls(**{**known, **{k: v for k, v in overrides.items() if v is not None}})


def rerender_clip(
    pipe: MultiViewPipeline, clip, steps: int = 25, generator: torch.Generator | None = None,
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
    the mode-(b) paired tracks a Track2View model is given (``evaluation.track_splat``). (T, 3, H, W) float32."""
    paired = source_depth_tracks(clip)
    return track_splat(clip.video[0, 0].numpy(), paired.tracks[0, 0].numpy(), paired.tracks[0, view].numpy(),
                       (paired.visible[0, 0] & paired.visible[0, view]).numpy())


def stereo_splat(source: Source, target: Source, geometry: SourceGeometry | None = None) -> torch.Tensor:
    """The classical reference, no learning: every pixel of every source frame lifted with the source's stereo depth
    (``dense_tracks``: confirmed pixels with weight 1, completed ones less), forward-splatted into each target camera
    at the depth maps' resolution with a z-buffer and a preference for source cameras near the target's
    (``paired_tracks``), holes inpainted (Telea), then area-resized to the target's size.

    Args:
        source, target: ``load_source`` results of one scene (the target's frames are not read).
        geometry: the source's ``estimate_geometry`` (computed when None).

    Returns:
        (T, 3, H, W) float32 in [0, 1].
    """
    geometry = geometry if geometry is not None else estimate_geometry(source)
    if not geometry.supported.any():  # no depth at all: nothing to splat, the source is the best guess
        return source.frames
    size = tuple(geometry.depth.shape[-2:])
    frames, K_src = source.at(size)
    _, K_tgt = target.at(size)
    tracks = dense_tracks(source, geometry)  # every pixel; confirmed ones weigh more
    tracks.cell = 1.0  # splatted at the depth maps' own resolution: one lifted pixel covers one pixel
    paired = tracks.paired(torch.stack([source.w2c, target.w2c])[None], torch.stack([K_src, K_tgt])[None], size)
    total, mass, _ = carry_frames(frames[None], paired.tracks[:, 0], paired.visible[:, 0], paired.tracks[:, 1],
                                  paired.visible[:, 1], paired.source_frame[:, 1], paired.weight[:, 1])
    image = (total / mass.clamp_min(1e-6))[0].clamp(0, 1).numpy()
    filled = torch.from_numpy(inpaint_holes(image, (mass[0, :, 0] < 1e-4).numpy()))
    return F.interpolate(filled, size=source.size, mode="area").clamp(0, 1)


def clip_stereo_splat(clip, view: int) -> np.ndarray:
    """The ``stereo_splat`` reference for view ``view`` of a single-clip batch: view 0 as a video with its cameras,
    splatted with its stereo geometry into view ``view``'s cameras (``stereo_splat``). (T, 3, H, W) float32."""
    return stereo_splat(clip_source(clip, 0, 0), clip_source(clip, 0, view)).numpy()


def rerender_heldout(
    pipe: MultiViewPipeline,
    settings: RerenderSettings,
    out_dir: str | Path | None = None,
    scale: int = 4,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """Score ``pipe`` on ``settings.num_clips`` held-out clips; optionally write videos and metrics.

    For every clip and every generated view: PSNR / SSIM of the model, of copying the source view and of the
    ground-truth-depth warp. ``out_dir`` receives ``clip_XXXX.mp4`` (source | generated | ground truth per
    generated view), ``contact_sheet.png`` (first, middle and last frames) and ``metrics.json``.

    Returns:
        {"settings": ..., "mean": {method: {"psnr", "ssim"}}, "clips": [per-clip scores]}.
    """
    s = settings
    config = SynthConfig(
        views=s.views, frames=s.frames, height=s.height, width=s.width, num_tracks=s.num_tracks, query_view=0,
        baseline=s.baseline,
    )
    out = check_output_dir(out_dir) if out_dir is not None else None  # a file there: refused before any work
    clips, sheet_rows = [], []
    for start in range(0, s.num_clips, s.batch):
        ids = list(range(start, min(start + s.batch, s.num_clips)))
        clip = render_clips(config, [clip_seed(s.seed, i, s.split) for i in ids])
        generated = torch.cat(
            [
                rerender_clip(pipe, collate([clip[b]]), s.steps, torch.Generator().manual_seed(s.sample_seed + i))
                for b, i in enumerate(ids)
            ]
        )  # (b, V, T, 3, H, W)
        for b, i in enumerate(ids):
            video, depth, w2c, K = (x[b].double().numpy() for x in (clip.video, clip.depth, clip.w2c, clip.K))
            source = video[0]
            record = {"index": i, "seed": clip.meta[b]["seed"], "views": []}
            panels = []
            for v in range(1, s.views):
                preds = {
                    "model": generated[b, v].double().numpy(),
                    "copy_source": copy_source(source),
                    "source_depth_splat": source_depth_splat(collate([clip[b]]), v),
                    "depth_warp": depth_warp(source, depth[v], w2c[0], K[0], w2c[v], K[v]),
                }
                record["views"].append({m: view_scores(p, video[v]) for m, p in preds.items()})
                panels.append(
                    [to_uint8_frames(torch.from_numpy(x).float()) for x in (source, preds["model"], video[v])]
                )
            clips.append(record)
            if out is not None:
                rows = [tile_views([upscale_frames(p, scale) for p in row], columns=3) for row in panels]
                grid = np.concatenate(rows, axis=1) if len(rows) > 1 else rows[0]
                write_mp4(out / f"clip_{i:04d}.mp4", grid)
                T = grid.shape[0]
                sheet_rows.append(np.concatenate([grid[t] for t in sorted({0, T // 2, T - 1})], axis=1))
            if progress is not None:
                progress(1)
    mean = {
        m: {k: float(np.mean([vv[m][k] for c in clips for vv in c["views"]])) for k in ("psnr", "ssim")}
        for m in METHODS
    }
    result = {"settings": asdict(s), "mean": mean, "clips": clips}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        width = max(r.shape[1] for r in sheet_rows)
        sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0))) for r in sheet_rows])
        cv2.imwrite(str(out / "contact_sheet.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
