"""Synthetic engine throughput: clips per second at 128x128, 16 frames, 4 views, 256 tracks.

Goals (issue 2): >= 5 clips/s on 2 CPU cores, >= 500 clips/s on an H100. Prints a markdown table;
run `python benchmarks/synth_throughput.py [--devices cpu cuda] [--batches 1 4 8] [--clips 16]`.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from mvtrack.scenes import SynthConfig, clip_seed, render_clips


def measure(config: SynthConfig, device: str, batch: int, clips: int, chunk_rays: int | None) -> float:
    render_clips(config, [clip_seed(99, i) for i in range(batch)], device, chunk_rays)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    done = 0
    while done < clips:
        render_clips(config, [clip_seed(0, done + i) for i in range(batch)], device, chunk_rays)
        done += batch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--devices", nargs="+", default=["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--clips", type=int, default=16, help="clips timed per row (CPU); 16x more on CUDA")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--chunk-rays", type=int, default=None)
    args = parser.parse_args()
    config = SynthConfig(views=4, frames=16, height=args.size, width=args.size, num_tracks=256)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    for device in args.devices:
        if device.startswith("cuda"):
            print(f"cuda device: {torch.cuda.get_device_name()}")
    print(f"\n| device | batch | clips/s ({args.size}x{args.size}, 16 frames, 4 views, 256 tracks) |")
    print("|---|---|---|")
    for device in args.devices:
        for batch in args.batches:
            clips = args.clips * (16 if device.startswith("cuda") else 1)
            rate = measure(config, device, batch, max(clips, batch), args.chunk_rays)
            print(f"| {device} | {batch} | {rate:.2f} |", flush=True)


if __name__ == "__main__":
    main()
