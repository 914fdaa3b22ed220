"""Data commands: ``synth`` (engine clips into shards) and ``viz`` (draw clips of shards)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer

from mvtrack.scenes.config import BASELINES, LAYOUTS, SPLITS, SynthConfig

from ._app import MAX_FPS, MAX_SEED, app, console, parse_size, progress_bar

_ENGINE = SynthConfig()  # the engine's defaults, shown as the options' defaults


@app.command()
def synth(
    out: Path = typer.Option(..., help="Output directory for the tar shards."),
    num: int = typer.Option(16, min=1, help="Number of clips."),
    views: int = typer.Option(_ENGINE.views, help="Cameras per clip, in [1, 64]."),
    frames: int = typer.Option(_ENGINE.frames, help="Frames per clip, in [1, 4096]."),
    size: str = typer.Option(str(_ENGINE.height), help="Frame size: N for N x N, or HxW (1 to 8192 pixels per side)."),
    tracks: int = typer.Option(_ENGINE.num_tracks, help="Tracks per clip, half on objects and half on the background, "
                               "in [1, 65536]."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Base seed; clip i depends only on (seed, i, split)."),
    split: Literal[SPLITS] = typer.Option("train", help="Seed stream (test is the held-out split)."),
    shards: int = typer.Option(64, min=1, help="Clips per shard."),
    baseline: Literal[BASELINES] = typer.Option(
        _ENGINE.baseline, help="Camera baseline between views: small (3-12 degrees), wide (25-70) or mixed."),
    layouts: str = typer.Option(",".join(_ENGINE.layouts), help=f"Scene layouts drawn per clip, comma-separated, of "
                                f"{', '.join(LAYOUTS)}: objects (primitives under a sky dome), room (RealEstate10K-like "
                                "rooms walked through)."),
    photo_prob: float = typer.Option(_ENGINE.photo_prob, min=0.0, max=1.0, help="Share of surfaces textured with photographs "
                                     "(scenes/photos.py), in [0, 1]."),
    query_view: int = typer.Option(_ENGINE.query_view, min=0, help="Draw track queries from this view only (0: Track2View's "
                                   "source tracks)."),
    batch: int = typer.Option(0, min=0, max=1024, help="Clips rendered together (0: 1 on CPU, where it is fastest; 64 "
                              "on GPU)."),
    device: str = typer.Option("cpu", help="Render device: cpu, cuda, cuda:N or auto."),
    video_format: str = typer.Option(
        "png", help="How shards store video: png (lossless, ~3x smaller than npy on engine clips), mp4 (H.264, ~35x "
        "smaller, mean error ~1.5/255), jpg, or npy (raw uint8, the format of older shards)."),
    quality: int = typer.Option(None, help="x264 QP for mp4 (default 18), JPEG quality (95), PNG level (3)."),
):
    """Render synthetic multi-view clips with exact tracks, depth and cameras into WebDataset tar shards."""
    from mvtrack.devices import resolve_device
    from mvtrack.runners.synth import write_synthetic_shards

    device = str(resolve_device(device))  # cuda without CUDA: one line, before anything is written
    height, width = parse_size(size)
    try:
        config = SynthConfig(views=views, frames=frames, height=height, width=width, num_tracks=tracks,
                             baseline=baseline, layouts=tuple(x.strip() for x in layouts.split(",")),
                             photo_prob=photo_prob, query_view=query_view)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    start = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("rendering", total=num)
        written = write_synthetic_shards(config, out, num, seed, split, shards, batch or (1 if device == "cpu" else 64),
                                         device, video_format, quality, progress=lambda n: progress.advance(task, n))
    elapsed = time.perf_counter() - start
    console.print(f"wrote {num} clips in {len(written)} shard(s) to {out} ({num / elapsed:.2f} clips/s)")


@app.command()
def viz(
    source: str = typer.Argument(..., help="Shard directory, .tar file or glob."),
    out: Path = typer.Option(..., help="Output directory."),
    max_clips: int = typer.Option(4, min=1, max=10000, help="Clips to draw."),
    fps: int = typer.Option(8, min=1, max=MAX_FPS),
    scale: int = typer.Option(2, min=1, max=16, help="Integer upscaling of frames before drawing."),
    max_tracks: int = typer.Option(128, min=1, max=65536, help="Tracks to draw per clip."),
):
    """Write an MP4 and a GIF grid of all views with tracks, and a PNG of the camera trajectories, per clip."""
    from mvtrack.outputs import check_output_dir
    from mvtrack.viz import visualize_shards

    check_output_dir(out)
    try:
        drawn = visualize_shards(source, out, max_clips, fps, scale, max_tracks)
    except FileNotFoundError as e:
        raise typer.BadParameter(str(e)) from None
    for message in drawn.warnings:
        console.print(f"[yellow]warning:[/yellow] {message}")
    if drawn.stats.corrupt_shards or drawn.stats.skipped_samples:
        console.print(f"[yellow]{drawn.stats.corrupt_shards} corrupt shard(s), {drawn.stats.skipped_samples} "
                      "skipped sample(s)[/yellow]")
    if not drawn.clips:
        console.print(f"no readable clips in {source}")
        raise typer.Exit(1)
    console.print(f"wrote {len(drawn.clips)} clip visualisation(s) to {out} (e.g. {drawn.clips[-1]['mp4'].name}, "
                  f"{drawn.clips[-1]['cameras'].name})")
