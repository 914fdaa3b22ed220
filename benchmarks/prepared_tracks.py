"""Accuracy of ``mvtrack prepare-tracks`` (``mvtrack.data.clip_tracks``) on engine clips, whose exact tracks are known:
each clip's tracks are prepared from the same view-0 frame-0 points as the engine's (those visible there) and scored
by ``clip_track_accuracy``, pooled over the clips.

    python benchmarks/prepared_tracks.py [--clips 6] [--size 128] [--frames 16] [--baselines small wide]
                                         [--methods flow auto] [--dynamic 0.7]

Rows: cross-view (views 1..) 2D tracks of all / static / moving points, view 0's own later frames, and a reference
that is no tracker at all (every point kept at its query position in every view and frame). Columns: coverage (share of
the truly visible (view, frame) pairs that got a track), false visible (share of the kept pairs that are truly hidden),
median error and the share within 1/2/4 px of the kept, truly visible pairs; for methods with 3D, the share of tracks
lifted and their median relative depth error (view 0's first camera) and share within 5%. View 0's cameras move along
orbits, arcs or dollies (stereo needs parallax); the scenes are dynamic with probability ``--dynamic``.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import time

import torch


def engine_clips(n: int, size: int, frames: int, baseline: str, dynamic: float, views: int):
    """(truth clip restricted to the tracks visible in view 0 at frame 0, static (N,), world points at frame 0)."""
    from mvtrack.data import MultiViewClip
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips

    cfg = SynthConfig(views=views, frames=frames, height=size, width=size, num_tracks=256, query_view=0,
                      baseline=baseline, camera_motions=("orbit", "arc", "dolly"), dynamic_prob=dynamic)
    out = []
    for k in range(n):
        clip = render_clips(cfg, [clip_seed(0, k, "test")])[0]
        first = clip.visible[0, 0]
        truth = MultiViewClip(video=clip.video, w2c=clip.w2c, K=clip.K, tracks=clip.tracks[:, :, first],
                              visible=clip.visible[:, :, first], meta=clip.meta)
        points = clip.tracks3d[:, first]  # (T, N, 3)
        static = (points - points[:1]).norm(dim=-1).amax(0) < 1e-4
        out.append((truth, static, points[0]))
    return out


def no_tracker(truth):
    """Every track at its query position in every view and frame, always visible: what a tracker must beat."""
    from mvtrack.data import MultiViewClip

    V, T, N = truth.visible.shape
    return MultiViewClip(video=truth.video, w2c=truth.w2c, K=truth.K,
                         tracks=truth.tracks[0, 0].expand(V, T, N, 2).clone(),
                         visible=torch.ones(V, T, N, dtype=torch.bool))


def main() -> None:
    from mvtrack.data.clip_tracks import clip_track_accuracy, clip_tracks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--baselines", nargs="+", default=["small", "wide"], choices=["small", "wide"])
    parser.add_argument("--methods", nargs="+", default=["flow", "auto"], choices=["flow", "stereo", "auto"])
    parser.add_argument("--dynamic", type=float, default=0.7, help="share of scenes whose objects move")
    args = parser.parse_args()
    print(f"{datetime.date.today()}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; "
          f"{args.clips} engine clips per baseline, {args.views} views x {args.frames} frames x {args.size} px, "
          f"dynamic {args.dynamic}")
    print("\n| baseline | method | points | coverage | false visible | median px | within 1 px | within 2 px | within 4 px"
          " | lifted to 3D | depth error (median) | depth within 5% | s per clip |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for baseline in args.baselines:
        clips = engine_clips(args.clips, args.size, args.frames, baseline, args.dynamic, args.views)
        truths, static, points = zip(*clips)
        dynamic = sum(bool(t.meta.get("dynamic")) for t in truths)
        runs = {"no tracker": ([no_tracker(t) for t in truths], 0.0)}
        for method in args.methods:
            start = time.perf_counter()
            prepared = [clip_tracks(t, method, queries=t.tracks[0, 0]) for t in truths]
            runs[method] = (prepared, (time.perf_counter() - start) / len(truths))
        for method, (prepared, seconds) in runs.items():
            rows = clip_track_accuracy(prepared, truths, static, points)
            depth = rows.get("depth")
            three_d = (f"{100 * depth['lifted']:.0f}% | {100 * depth['median_rel']:.1f}% | "
                       f"{100 * depth['within_5pct']:.0f}%" if depth and depth["count"] else
                       ("0% | - | -" if depth else "- | - | -"))
            scored = [("cross-view, all", rows["cross_view"]["all"]), ("cross-view, static", rows["cross_view"]["static"]),
                      ("cross-view, moving", rows["cross_view"]["moving"]), ("view 0, frames 1..", rows["source_view"]["all"])]
            for name, r in scored:
                first = name == "cross-view, all"
                label = f"{baseline} ({dynamic}/{len(truths)} dynamic)" if first else ""
                if not r["count"]:
                    continue
                print(f"| {label} | {method if first else ''} | {name} | {100 * r['coverage']:.0f}% | "
                      f"{100 * r['false_visible']:.0f}% | {_num(r['median_px'], '{:.2f}')} | {_pct(r['within_1'])} | "
                      f"{_pct(r['within_2'])} | {_pct(r['within_4'])} | {three_d if first else ' |  | '} | "
                      f"{f'{seconds:.1f}' if first and method != 'no tracker' else ''} |", flush=True)


def _num(value: float, fmt: str) -> str:
    return "-" if math.isnan(value) else fmt.format(value)


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.0f}%"


if __name__ == "__main__":
    main()
