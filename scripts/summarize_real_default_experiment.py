"""Table of issue 19's experiment (scripts/real_default_experiment_cpu.sh) for docs/results.md, and its decision.

Reads OUT/bench_<task>_<arm>_s<seed>/summary.json (mvtrack bench on the real split <task> = near, far, and on the
engine's held-out split for <task> = engine) and the reference rows of OUT/bench_<task>_refs/summary.json and prints, per arm and task, PSNR / SSIM of each seed, their mean and
spread (half the difference of the two seeds), the reference rows, and what the protocol's decision rule says.

    python scripts/summarize_real_default_experiment.py outputs/real_default_cpu
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ARMS = ("gate", "head")
TASKS = ("near", "far", "engine")
REFERENCES = ("copy_source", "stereo_splat", "source_depth_splat")


def rows(out: Path, task: str, arm: str, seed: str) -> dict | None:
    path = out / f"bench_{task}_{arm}_s{seed}" / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else None


def score(row: dict) -> tuple[float, float]:
    return row["metrics"]["psnr"]["mean"], row["metrics"]["ssim"]["mean"]


def main(out: Path) -> None:
    seeds = sorted({p.name.rsplit("_s", 1)[1] for p in out.glob("bench_*_s*")})
    if not seeds:
        sys.exit(f"no bench_<task>_<arm>_s<seed> folders under {out}")
    lines = ["| task | arm | " + " | ".join(f"seed {s} PSNR / SSIM" for s in seeds)
             + " | mean PSNR ± spread | mean SSIM ± spread |", "|---|---|" + "---|" * (len(seeds) + 2)]
    means: dict = {}
    for task in TASKS:
        refs: dict = {}
        for arm in ARMS:
            got = {s: rows(out, task, arm, s) for s in seeds}
            found = {s: r for s, r in got.items() if r is not None}
            if not found:
                continue
            scores = {s: score(r[f"{arm}_s{s}"]) for s, r in found.items()}
            p, q = np.array([v[0] for v in scores.values()]), np.array([v[1] for v in scores.values()])
            spread = (np.ptp(p) / 2, np.ptp(q) / 2)
            means[(task, arm)] = (p.mean(), q.mean(), *spread)
            cells = [f"{scores[s][0]:.2f} / {scores[s][1]:.3f}" if s in scores else "—" for s in seeds]
            lines.append(f"| {task} | {arm} | " + " | ".join(cells)
                         + f" | {p.mean():.2f} ± {spread[0]:.2f} | {q.mean():.3f} ± {spread[1]:.3f} |")
            for r in found.values():
                refs.update({k: score(v) for k, v in r.items() if k in REFERENCES})
        ref_path = out / f"bench_{task}_refs" / "summary.json"  # the reference rows, scored once per split
        if ref_path.is_file():
            refs.update({k: score(v) for k, v in json.loads(ref_path.read_text()).items() if k in REFERENCES})
        for name, (p, q) in refs.items():
            lines.append(f"| {task} | {name} (reference) | " + " | ".join("" for _ in seeds) + f" | {p:.2f} | {q:.3f} |")
    print("\n".join(lines))
    decisive = [(t, i) for t in ("near", "far") for i in (0, 1)]
    if all((t, a) in means for t in ("near", "far") for a in ARMS):
        wins = []
        for task, i in decisive:
            g, h = means[(task, "gate")], means[(task, "head")]
            margin = max(g[2 + i], h[2 + i])
            wins.append(h[i] - g[i] > margin)
        verdict = "head" if all(wins) else "gate"
        print(f"\ndecision rule (head must beat gate by more than the larger seed spread on near/far PSNR and SSIM): "
              f"{['near PSNR', 'near SSIM', 'far PSNR', 'far SSIM']} -> {wins}: the default's design is `{verdict}`")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/real_default_cpu"))
