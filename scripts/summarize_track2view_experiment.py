"""Table of the CPU-scale Track2View experiment (scripts/track2view_experiment_cpu.sh) for docs/results.md.

Reads OUT/<arm>_s<seed>/heldout/ (written by `mvtrack demo`: summary.json and <row>/results.json) and prints, per arm, the held-out PSNR and
SSIM of each seed, their mean, and the per-clip paired difference against the camera-only arm of the same seed
(mean +- standard error over the 16 clips); then the reference rows, which do not depend on the arm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ARMS = ("camera_only", "track2view", "track2view_mvtrack4gen")


REFERENCES = ("copy_source", "source_depth_splat", "depth_warp")


def per_view(heldout: Path, method: str, key: str) -> np.ndarray:
    """One value per scored view of a demo directory's row ``method`` (``model``: the row that is no reference)."""
    if method == "model":
        method = next(m for m in json.loads((heldout / "summary.json").read_text()) if m not in REFERENCES)
    views = json.loads((heldout / method / "results.json").read_text())["views"]
    return np.array([v["metrics"][key] for v in sorted(views, key=lambda v: (v["clip"], v["view"]))])


def main(out: Path) -> None:
    runs = {p.parent.parent.name: p.parent for p in sorted(out.glob("*_s*/heldout/summary.json"))}
    if not runs:
        sys.exit(f"no runs with heldout/summary.json under {out}")
    seeds = sorted({name.rsplit("_s", 1)[1] for name in runs})
    lines = ["| arm | " + " | ".join(f"seed {s} PSNR / SSIM" for s in seeds)
             + " | mean PSNR | mean SSIM | vs camera-only (PSNR, SSIM; paired over clips) |",
             "|---|" + "---|" * (len(seeds) + 3)]
    for arm in ARMS:
        cells, psnrs, ssims, diffs = [], [], [], []
        for s in seeds:
            path = runs.get(f"{arm}_s{s}")
            if path is None:
                cells.append("—")
                continue
            p, q = per_view(path, "model", "psnr"), per_view(path, "model", "ssim")
            psnrs.append(p.mean())
            ssims.append(q.mean())
            cells.append(f"{p.mean():.2f} / {q.mean():.3f}")
            base = runs.get(f"camera_only_s{s}")
            if base is not None and arm != "camera_only":
                diffs.append((p - per_view(base, "model", "psnr"), q - per_view(base, "model", "ssim")))
        if not psnrs:
            continue
        if diffs:
            dp, dq = np.concatenate([d[0] for d in diffs]), np.concatenate([d[1] for d in diffs])
            se = lambda x: x.std(ddof=1) / np.sqrt(len(x))  # noqa: E731
            versus = f"{dp.mean():+.2f} ± {se(dp):.2f} dB, {dq.mean():+.3f} ± {se(dq):.3f}"
        else:
            versus = "—"
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {np.mean(psnrs):.2f} | {np.mean(ssims):.3f} | {versus} |")
    first = next(iter(runs.values()))
    for method, name in (("copy_source", "copy the source (reference)"),
                         ("source_depth_splat", "source-depth splat, same tracks, no learning (reference)"),
                         ("depth_warp", "ground-truth-depth warp (upper reference)")):
        p, q = per_view(first, method, "psnr"), per_view(first, method, "ssim")
        lines.append(f"| {name} | " + " | ".join("" for _ in seeds) + f" | {p.mean():.2f} | {q.mean():.3f} | |")
    table = "\n".join(lines)
    (out / "summary.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/track2view_cpu"))
