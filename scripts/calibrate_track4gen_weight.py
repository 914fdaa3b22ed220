"""Calibrate Track4Gen's refiner loss weight on a training config (docs/tracking.md, "Track4Gen as in the paper").

    python scripts/calibrate_track4gen_weight.py configs/track_cpu/track4gen_paper.yaml --batches 10
    python scripts/calibrate_track4gen_weight.py CONFIG --fractions 0.1 1.0 tracking.refiner_style=bottleneck

Measures, over the run's first micro-batches, the gradient norms of the diffusion loss and of the unweighted refiner
loss w.r.t. the trainable parameters both reach, and prints the weight that makes the refiner loss's gradient each
given fraction of the diffusion loss's (``mvtrack.training.calibrate``). Writes nothing.
"""

from __future__ import annotations

import argparse
import json
import statistics

from mvtrack.training.calibrate import calibrate_track4gen_weight
from mvtrack.training import TrainConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="training YAML with tracking.refiner_block set")
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (as for mvtrack train)")
    parser.add_argument("--batches", type=int, default=10, help="micro-batches to measure (default 10)")
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 1.0],
                        help="target |g_ref| / |g_diff| after weighting (default 0.1 1.0)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f"--batches: expected >= 1, got {args.batches}")
    if any(not f > 0 for f in args.fractions):
        parser.error(f"--fractions: expected numbers > 0, got {args.fractions}")
    config = TrainConfig.from_yaml(args.config, args.overrides)
    norms = calibrate_track4gen_weight(config, args.batches)
    weights = {f: norms.weight(f) for f in args.fractions}
    if args.json:
        print(json.dumps({**vars(norms), "weights": weights}, indent=2))
        return
    t = config.tracking
    print(f"{args.config}: model {config.model}, refiner block {t.refiner_block} ({t.refiner_style}, "
          f"{t.refiner_softargmax}, radius {t.refiner_radius}), trainable {t.trainable}, {args.batches} batches")
    print(f"shared parameters: {len(norms.shared)} tensors")
    print("batch  L_diff     L_ref(unweighted)  |g_diff|     |g_ref|      ratio")
    for i, (ld, lr, gd, gr) in enumerate(zip(norms.diffusion_loss, norms.refiner_loss, norms.diffusion,
                                             norms.refiner)):
        print(f"{i:5d}  {ld:9.4f}  {lr:17.4f}  {gd:11.4e}  {gr:11.4e}  {gd / gr if gr else float('inf'):9.4f}")
    print(f"median |g_diff| / |g_ref| = {statistics.median(norms.ratios):.4f}")
    for f, w in weights.items():
        print(f"weight for |g_ref| = {f:g} |g_diff|: {w:.4g}")


if __name__ == "__main__":
    main()
