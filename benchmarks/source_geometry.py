"""Time of a source's dense geometry (``mvtrack.data.estimate_geometry``): the sweep's depth range from triangulated
flow tracks, plane-sweep stereo, completion, consistency and moving pixels, per frame count and working size.

    python benchmarks/source_geometry.py [--video V --cameras C] [--device cuda]

Without a video it renders a static engine clip (orbiting camera) at 256 px. Prints a table; the goal on a 2-core
CPU is under 30 s for 16 frames at 256 px.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def _engine_clip(root: Path, frames: int) -> tuple[Path, Path]:
    from mvtrack.geometry import write_re10k
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    from mvtrack.viz import to_uint8_frames, write_mp4

    cfg = SynthConfig(views=1, frames=frames, height=256, width=256, num_tracks=8, dynamic_prob=0.0,
                      camera_motions=("orbit",))
    clip = render_clips(cfg, [clip_seed(0, 0, "test")])
    write_mp4(root / "clip.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(root / "clip.txt", clip.w2c[0, 0], clip.K[0, 0], 256, 256)
    return root / "clip.mp4", root / "clip.txt"


def main() -> None:
    from mvtrack.data import load_source
    from mvtrack.data.source_geometry import estimate_geometry, sparse_depth_range
    from mvtrack.geometry import plane_sweep_depth

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path)
    parser.add_argument("--cameras", type=Path)
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video, cameras = (args.video, args.cameras) if args.video else _engine_clip(Path(tmp), max(args.frames))
        print(f"source: {video} | device {args.device} | torch threads {torch.get_num_threads()}")
        print(f"| frames | working size | depth range (s) | plane sweep (s) | whole estimate_geometry (s) | s per frame |"
              f" confident | supported |")
        print("|---|---|---|---|---|---|---|---|")
        for T in args.frames:
            for size in args.sizes:
                source = load_source(video, (size // 2, size // 2), T, cameras)
                frames, K = source.at((size, size))
                start = time.perf_counter()
                near_far = sparse_depth_range(frames, source.w2c, K)
                ranged = time.perf_counter()
                plane_sweep_depth(frames.to(args.device), source.w2c.to(args.device), K.to(args.device), near_far)
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                swept = time.perf_counter()
                geometry = estimate_geometry(source, working_size=(size, size))
                whole = time.perf_counter() - swept
                print(f"| {T} | {size} | {ranged - start:.2f} | {swept - ranged:.2f} | {whole:.2f} | {whole / T:.2f} | "
                      f"{100 * float(geometry.valid.float().mean()):.0f}% | {100 * geometry.coverage():.0f}% |",
                      flush=True)


if __name__ == "__main__":
    main()
