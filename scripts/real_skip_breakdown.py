"""Issue 19 diagnostic: where a model's re-render of the real-footage split wins or loses against the stereo + splat
reference, by how much of each target pixel the source's tracks cover (the splat `generate` hands a pixel model):
`full` (coverage 1), `part` (0-1) and `hole` (none). PSNR of each region, for the reference, the splat with its holes
inpainted at the model's size, and the model's videos of a finished `mvtrack bench` run. Run from the repo root:
`python scripts/real_skip_breakdown.py near outputs/bench_near/<method>/pred`."""
import argparse

import numpy as np
import torch

from mvtrack.data.source_geometry import scale_cameras
from mvtrack.runners.bench import load_split
from mvtrack.runners.generate import prepare_source
from mvtrack.runners.references import inpaint_holes, stereo_splat
from mvtrack.viz import read_video

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("task", choices=["near", "far"])
parser.add_argument("pred", help="a bench run's pred folder: <clip>/view_1.mp4")
parser.add_argument("--model", default="weights/mvtrack-S", help="the model whose scene depth scales the scene")
args = parser.parse_args()
split = load_split(f"configs/bench/re10k/{args.task}.yaml")
for clip in split.clip_ids():
    source, target = split.load(clip)
    inputs = prepare_source(source, None, args.model)
    w2c = torch.stack([inputs.source.w2c, scale_cameras(target.w2c, inputs.scale)])[None]
    splat = inputs.splat(w2c, torch.stack([source.K, target.K])[None])[0, 1].numpy()  # (T, 4, H, W)
    coverage, truth = splat[:, 3], target.frames.numpy()
    rows = {"stereo + splat": stereo_splat(source, target, inputs.geometry.scaled(1 / inputs.scale)).numpy(),
            "splat, holes inpainted": inpaint_holes(splat[:, :3], coverage == 0),
            "model": np.moveaxis(np.asarray(read_video(f"{args.pred}/{clip}/view_1.mp4"), np.float32), -1, 1) / 255}
    regions = {"full": coverage >= 0.999, "part": (coverage > 0) & (coverage < 0.999), "hole": coverage == 0}
    print(f"{clip}: " + ", ".join(f"{k} {v.mean():.0%}" for k, v in regions.items()))
    for name, video in rows.items():
        error = ((video - truth) ** 2).mean(1)  # (T, H, W)
        cells = [f"{k} {10 * np.log10(1 / error[m].mean()):6.2f}" if m.any() else f"{k}    —  " for k, m in
                 regions.items()]
        print(f"  {name:24s} all {10 * np.log10(1 / error.mean()):6.2f} | " + " | ".join(cells))
