"""Per-arm two-seed means and spreads of the CPU-scale track-supervision experiment (docs/results.md), and the
pre-registered decision: which arms beat camera-only on which metrics.

    python scripts/summarize_track_experiment.py outputs/track_cpu/bench
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ARMS = ("camera_only", "mvtrack4gen", "track4gen", "both")
METRICS = {"psnr": 1, "ssim": 1, "warp_psnr": 1, "AJ": 1, "track_epe": -1}  # +1: higher is better
EXTRA = ("delta_avg", "mat_pix", "flicker")


def load(root: Path, name: str) -> dict:
    return json.loads((root / name / "results.json").read_text())["summary"]


def main(root: Path) -> None:
    rows = {}
    for arm in ARMS:
        seeds = [load(root, f"{arm}_s{s}") for s in (0, 1)]
        rows[arm] = {k: [s["metrics"][k]["mean"] for s in seeds] for k in (*METRICS, *EXTRA)}
        rows[arm]["camera_fail"] = [f"{s['camera_failures']['failed']}/{s['camera_failures']['attempted']}"
                                    for s in seeds]
    header = ["arm"] + [f"{k}{' ↓' if d < 0 else ''}" for k, d in METRICS.items()] + list(EXTRA) + ["camera failures"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for arm, r in rows.items():
        cells = [f"{(a + b) / 2:.3f} ± {abs(a - b) / 2:.3f}" for k in (*METRICS, *EXTRA) for a, b in [r[k]]]
        print(f"| {arm} | " + " | ".join(cells) + f" | {', '.join(r['camera_fail'])} |")
    print()
    base = rows["camera_only"]
    for arm in ARMS[1:]:
        wins, losses = [], []
        for k, d in METRICS.items():
            a, b = rows[arm][k], base[k]
            diff = d * ((a[0] + a[1]) / 2 - (b[0] + b[1]) / 2)
            margin = max(abs(a[0] - a[1]), abs(b[0] - b[1]))
            if diff > margin:
                wins.append(k)
            elif -diff > margin:
                losses.append(k)
        print(f"{arm}: better than camera-only on {wins or 'none'}; worse on {losses or 'none'} (beyond seed spread)")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/track_cpu/bench"))
