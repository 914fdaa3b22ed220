"""Accuracy of triangulated flow tracks (``mvtrack.data.video_tracks``, source (c)) against the engine's exact
geometry, on static scenes seen by translating cameras (docs/data.md, "Tracks from real video").

For each clip, view 0 is the source: its grid flow tracks are triangulated with its cameras, and every static
point is projected into view 1 at every frame where it is known. The truth is the grid point at its query frame
lifted with the engine's exact depth of view 0 (grid points sit on pixel centres, where the depth is exact),
projected the same way. Printed: tracks, share static / dynamic / untriangulable, median residual, median
relative depth error at the query frame, and the share of (point, frame) projections in view 1 within 1 px and
2 px of the truth.

    python scripts/real_tracks_accuracy.py --size 64 --size 128 --clips 4
"""

from __future__ import annotations

import argparse

import torch

from mvtrack.data.real_tracks import grid_flow_tracks
from mvtrack.geometry import project, triangulate_tracks, unproject
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


def measure(size: int, index: int, frames: int, grid_step: int, query_frames: int) -> dict:
    cfg = SynthConfig(views=2, frames=frames, height=size, width=size, num_tracks=16, dynamic_prob=0.0,
                      camera_motions=("orbit", "arc", "dolly"))
    clip = render_clips(cfg, [clip_seed(0, index, "val")]).unbatch()[0]
    w2c, K = clip.w2c.double(), clip.K.double()  # (V, T, 4, 4), (V, T, 3, 3)
    tracks, visible, queries = grid_flow_tracks(clip.video[0], grid_step, query_frames)
    tri = triangulate_tracks(tracks, visible, w2c[0], K[0])
    t0 = queries[:, 0].long()
    z_true = clip.depth[0][t0, queries[:, 2].long(), queries[:, 1].long()].double()  # (N,) exact at pixel centres
    true = unproject(queries[:, None, 1:], z_true[:, None], w2c[0, t0], K[0, t0])[:, 0]  # (N, 3)
    s = tri.static
    _, z_est = project(tri.points[s][:, None], w2c[0, t0[s]], K[0, t0[s]])
    T = frames
    known = visible & s[None]  # (T, N)
    est_xy, _ = project(tri.points[None].nan_to_num().expand(T, -1, 3), w2c[1], K[1])
    true_xy, _ = project(true[None].expand(T, -1, 3), w2c[1], K[1])
    err = (est_xy - true_xy).norm(dim=-1)[known]
    counts = tri.counts()
    return {"size": size, "baseline": clip.meta["baseline"], "view_step": clip.meta["view_step_degrees"],
            "tracks": len(s), **counts, "residual": tri.residual[tri.triangulable],
            "depth_rel_err": (z_est[:, 0] - z_true[s]).abs() / z_true[s], "err": err}


def report(rows: list[dict], title: str) -> None:
    """Pooled over clips: (point, frame) projections in view 1, static points' depth, track labels."""
    cat = {k: torch.cat([r[k] for r in rows]) for k in ("residual", "depth_rel_err", "err")}
    n = sum(r["tracks"] for r in rows)
    share = {k: sum(r[k] for r in rows) / n for k in ("static", "dynamic", "untriangulable")}
    err = cat["err"]
    print(f"{title}: {len(rows)} clips, {n} tracks; static {share['static']:.2f} dynamic {share['dynamic']:.2f} "
          f"untriangulable {share['untriangulable']:.2f}; median residual {cat['residual'].median():.2f} px; "
          f"static points' depth: median relative error {cat['depth_rel_err'].median():.3f}; in view 1: "
          f"{(err < 1).double().mean():.3f} within 1 px, {(err < 2).double().mean():.3f} within 2 px, "
          f"median {err.median():.2f} px ({len(err)} point-frames); clips without a static point: "
          f"{sum(r['static'] == 0 for r in rows)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, action="append")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--grid-step", type=int, default=4)
    parser.add_argument("--query-frames", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for size in args.size or [64, 128]:
        for i in range(args.clips):
            r = measure(size, i, args.frames, args.grid_step, args.query_frames)
            rows.append(r)
            print(f"{size} px clip {i}: {r['baseline']} baseline ({r['view_step']:.0f} deg), {r['tracks']} tracks, "
                  f"{r['static']} static, within 1 px {(r['err'] < 1).double().mean():.3f}", flush=True)
    for size in sorted({r["size"] for r in rows}):
        for baseline in ("small", "wide", None):
            sel = [r for r in rows if r["size"] == size and baseline in (r["baseline"], None)]
            if sel:
                report(sel, f"{size} px, {baseline or 'all'} baselines")


if __name__ == "__main__":
    main()
