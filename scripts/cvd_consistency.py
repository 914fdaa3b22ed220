"""Score one model for the CVD experiment (docs/results.md), or summarise an experiment directory.

    python scripts/cvd_consistency.py --model RUN/final --out RUN/scores.json [--views-per-group K]
    python scripts/cvd_consistency.py --reference ground_truth --out outputs/cvd_cpu/ref_ground_truth_s0/scores.json
    python scripts/cvd_consistency.py --summarize outputs/cvd_cpu

Scores: (1) re-rendering of 16 held-out clips with the model's training views (``mvtrack demo``'s run: PSNR / SSIM
of every generated view from the decoded videos; the figures in docs/results.md were taken on float frames by the
older path, which this replaced: expect them to differ in the second decimal); (2) mutual consistency of the three targets of the 8 clips of configs/bench/cvd4.yaml,
generated together (or collaboratively with ``--views-per-group``): for every pair of generated views, the
epipolar consistency of their matches under the requested cameras, CVD's two-view pose error (pooled into pose AUC)
and cross-view track consistency of the ground-truth points, plus PSNR / SSIM of each target. Library metrics only
(mvtrack.evaluation); the sampling path is the benchmark's (``rerender_clip``). ``--reference`` scores reference
videos on the 4-view split instead of a model, to calibrate the consistency metrics: ``ground_truth`` (the true
targets), ``blocks`` (the true targets averaged over 8x8-pixel blocks: the flat colour blocks a weak pixel model
makes, consistent by construction but without detail) and ``copy_source`` (every target a copy of the source).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from itertools import combinations
from pathlib import Path

import numpy as np
import torch

from mvtrack.evaluation import view_scores
from mvtrack.evaluation.cross_view import cross_view_track_consistency
from mvtrack.evaluation.epipolar import epipolar_scores
from mvtrack.evaluation.matching import get_matcher, match_videos, pose_errors
from mvtrack.evaluation.pose import pose_auc
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.runners.bench import BenchConfig, render_split
from mvtrack.runners.demo import demo_run, run_demo
from mvtrack.runners.rerender import rerender_clip
from mvtrack.viz import to_uint8_frames

SPLIT = Path(__file__).resolve().parents[1] / "configs" / "bench" / "cvd4.yaml"
METRICS = ("rerender_psnr", "rerender_ssim", "psnr4", "ssim4", "epi_1px", "epi_median_px", "pose_auc20",
           "xtrack_2px", "xtrack_median_px")


def reference_video(name: str, video: torch.Tensor) -> torch.Tensor:
    """(V, T, 3, H, W) reference outputs of a clip's (V, T, 3, H, W) true video; view 0 is the source."""
    if name == "ground_truth":
        return video
    if name == "copy_source":
        return video[:1].expand_as(video)
    if name == "blocks":
        V, T, C, H, W = video.shape
        small = torch.nn.functional.avg_pool2d(video.reshape(V * T, C, H, W), 8)
        return torch.nn.functional.interpolate(small, scale_factor=8, mode="nearest").reshape(video.shape)
    raise ValueError(f"--reference: expected ground_truth, blocks or copy_source, got {name!r}")


def score(model: str | None, steps: int, views_per_group: int | None, clips: int, reference: str | None = None
          ) -> dict:
    out: dict = {"rerender_psnr": math.nan, "rerender_ssim": math.nan}
    pipe = None
    if reference is None:
        pipe = MultiViewPipeline.from_model(model)
        pipe.set_progress_bar_config(disable=True)
        with tempfile.TemporaryDirectory() as tmp:
            run = demo_run(model, clips, steps)
            run.methods = run.methods[:1]  # the model alone
            row = run_demo(run, tmp)[run.methods[0].name]["metrics"]
        out = {"rerender_psnr": row["psnr"]["mean"], "rerender_ssim": row["ssim"]["mean"],
               "rerender_views": run.split.views}
    matcher = get_matcher("auto")
    cfg = BenchConfig.from_yaml(SPLIT)
    per_view, pairs, errors = [], [], []
    split = render_split(cfg)
    for i, (_, clip) in enumerate(split):
        if reference is None:
            video = rerender_clip(pipe, clip, steps, torch.Generator().manual_seed(i), views_per_group)[0]
        else:
            video = reference_video(reference, clip.video[0])
        gt = clip.video[0]
        frames = {v: to_uint8_frames(video[v]) for v in range(1, cfg.views)}
        for v in frames:
            s = view_scores(video[v].double().numpy(), gt[v].double().numpy())
            per_view.append({"psnr4": s["psnr"], "ssim4": s["ssim"]})
        cams = {v: (clip.w2c[0, v].double().numpy(), clip.K[0, v].double().numpy()) for v in frames}
        for a, b in combinations(frames, 2):
            matches = match_videos(frames[a], frames[b], matcher)
            epi = epipolar_scores(matches, cams[a][0], cams[a][1], cams[b][0], cams[b][1])
            errors += pose_errors(matches, cams[a][0], cams[b][0], cams[a][1], cams[b][1]).tolist()
            xt = cross_view_track_consistency(frames[a], frames[b], clip.tracks[0, a].numpy(),
                                              clip.visible[0, a].numpy(), clip.tracks[0, b].numpy(),
                                              clip.visible[0, b].numpy(), cams[a][0], cams[a][1], cams[b][0],
                                              cams[b][1])
            pairs.append({"epi_1px": epi.get("frac_1px", math.nan), "epi_median_px": epi.get("median_px", math.nan),
                          "xtrack_2px": xt.get("frac_2px", math.nan),
                          "xtrack_median_px": xt.get("median_px", math.nan)})
    for key in ("psnr4", "ssim4"):
        out[key] = float(np.mean([r[key] for r in per_view]))
    for key in ("epi_1px", "epi_median_px", "xtrack_2px", "xtrack_median_px"):
        values = np.array([r[key] for r in pairs], np.float64)
        out[key] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
        out[key + "_n"] = int(np.isfinite(values).sum())
    out["pose_auc20"] = float(pose_auc(errors)[2])
    out.update(pairs=len(pairs), clips=len(split), steps=steps, views_per_group=views_per_group,
               matcher=matcher.name, model=model or reference)
    return out


def summarize(root: Path) -> str:
    """Two-seed mean ± half the seed difference of every arm found under ``root`` (``<arm>_s<seed>/scores*.json``)."""
    runs: dict[str, list[dict]] = {}
    for f in sorted(root.glob("*_s[0-9]*/scores*.json")):
        arm = f.parent.name.rsplit("_s", 1)[0] + f.stem.removeprefix("scores")
        runs.setdefault(arm, []).append(json.loads(f.read_text()))
    lines = ["| arm | seeds | " + " | ".join(METRICS) + " |", "|---|---|" + "---|" * len(METRICS)]
    for arm, rows in runs.items():
        cells = []
        for m in METRICS:
            v = np.array([r[m] for r in rows], np.float64)
            cells.append(f"{v.mean():.3f} ± {abs(v[0] - v[-1]) / 2:.3f}" if len(v) > 1 else f"{v.mean():.3f}")
        lines.append(f"| {arm} | {len(rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--clips", type=int, default=16, help="re-rendering clips")
    parser.add_argument("--views-per-group", type=int, default=None)
    parser.add_argument("--reference", choices=("ground_truth", "blocks", "copy_source"))
    parser.add_argument("--summarize", type=Path)
    args = parser.parse_args()
    if args.summarize:
        print(summarize(args.summarize))
        return
    if not (args.model or args.reference) or not args.out:
        parser.error("--model (or --reference) and --out are required (or --summarize DIR)")
    result = score(args.model, args.steps, args.views_per_group, args.clips, args.reference)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
