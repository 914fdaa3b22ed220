"""Per-arm two-seed means and spreads of the CPU-scale track-supervision experiment (docs/results.md), and the
pre-registered decision: which arms beat camera-only on which metrics.

    python scripts/summarize_track_experiment.py outputs/track_cpu/bench
    python scripts/summarize_track_experiment.py outputs/track_v2_cpu/bench --arms camera_only mvtrack4gen \
        mvtrack4gen_mvtap track4gen_paper          # issue 14: + epipolar consistency and camera sensitivity

The first arm is the control. Rows are read from ``<root>/summary.json`` (``mvtrack bench --config``) when it
exists, else from ``<root>/<arm>_s<seed>/results.json`` (``mvtrack bench --checkpoint``, issue 4).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ARMS = ("camera_only", "mvtrack4gen", "track4gen", "both")
METRICS = {"psnr": 1, "ssim": 1, "warp_psnr": 1, "AJ": 1, "track_epe": -1}  # +1: higher is better
V2_METRICS = {"epi_1px": 1, "cam_sens_ratio": 1}  # issue 14's additions, when the runs have them
EXTRA = ("delta_avg", "mat_pix", "flicker")


def load(root: Path, name: str) -> dict:
    summary = root / "summary.json"
    if summary.is_file():
        return json.loads(summary.read_text())[name]
    return json.loads((root / name / "results.json").read_text())["summary"]


def main(root: Path, arms=ARMS) -> None:
    global METRICS
    rows = {}
    probe = load(root, f"{arms[0]}_s0")["metrics"]
    METRICS = {**METRICS, **{k: d for k, d in V2_METRICS.items() if k in probe}}
    for arm in arms:
        seeds = [load(root, f"{arm}_s{s}") for s in (0, 1)]
        rows[arm] = {k: [s["metrics"].get(k, {"mean": float("nan")})["mean"] for s in seeds]
                     for k in (*METRICS, *EXTRA)}
        rows[arm]["camera_fail"] = [f"{s['camera_failures']['failed']}/{s['camera_failures']['attempted']}"
                                    for s in seeds]
    header = ["arm"] + [f"{k}{' ↓' if d < 0 else ''}" for k, d in METRICS.items()] + list(EXTRA) + ["camera failures"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for arm, r in rows.items():
        cells = [f"{(a + b) / 2:.3f} ± {abs(a - b) / 2:.3f}" for k in (*METRICS, *EXTRA) for a, b in [r[k]]]
        print(f"| {arm} | " + " | ".join(cells) + f" | {', '.join(r['camera_fail'])} |")
    print()
    base = rows[arms[0]]
    for arm in arms[1:]:
        wins, losses = [], []
        for k, d in METRICS.items():
            a, b = rows[arm][k], base[k]
            diff = d * ((a[0] + a[1]) / 2 - (b[0] + b[1]) / 2)
            margin = max(abs(a[0] - a[1]), abs(b[0] - b[1]))
            if diff > margin:
                wins.append(k)
            elif -diff > margin:
                losses.append(k)
        print(f"{arm}: better than {arms[0]} on {wins or 'none'}; worse on {losses or 'none'} (beyond seed spread)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default="outputs/track_cpu/bench", type=Path)
    parser.add_argument("--arms", nargs="+", default=list(ARMS), help="arms, the control first")
    args = parser.parse_args()
    main(args.root, tuple(args.arms))
