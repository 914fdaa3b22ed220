"""The ``mvtrack`` command line."""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

app = typer.Typer(
    help="mvtrack: 4D-consistent camera-controlled multi-view video generation supervised by point tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)


def parse_size(text: str) -> tuple[int, int]:
    """``128`` or ``96x128`` (H x W) to (H, W); raises ``typer.BadParameter`` on anything else."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise typer.BadParameter(f"expected N or HxW with positive integers, got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise typer.BadParameter(f"expected N or HxW with positive integers, got {text!r}")
    return parts[0], parts[1]


@app.command()
def synth(
    out: Path = typer.Option(..., help="Output directory for the tar shards."),
    num: int = typer.Option(16, min=1, help="Number of clips."),
    views: int = typer.Option(4, help="Cameras per clip (>= 1)."),
    frames: int = typer.Option(16, help="Frames per clip (>= 1)."),
    size: str = typer.Option("128", help="Frame size: N for N x N, or HxW."),
    tracks: int = typer.Option(256, help="Tracks per clip, half on objects and half on the background."),
    seed: int = typer.Option(0, help="Base seed; clip i depends only on (seed, i, split)."),
    split: str = typer.Option("train", help="Seed stream: train, val or test (test is the held-out split)."),
    shards: int = typer.Option(64, min=1, help="Clips per shard."),
    baseline: str = typer.Option("mixed", help="Camera baseline between views: small, wide or mixed."),
    batch: int = typer.Option(0, min=0, help="Clips rendered together (0: 1 on CPU, where it is fastest; 64 on GPU)."),
    device: str = typer.Option("cpu", help="Render device, e.g. cpu or cuda."),
):
    """Render synthetic multi-view clips with exact tracks, depth and cameras into WebDataset tar shards."""
    from mvtrack.data import ShardWriter
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips

    height, width = parse_size(size)
    batch = batch or (1 if device == "cpu" else 64)
    try:
        config = SynthConfig(views=views, frames=frames, height=height, width=width, num_tracks=tracks, baseline=baseline)
        seeds = [clip_seed(seed, i, split) for i in range(num)]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    start = time.perf_counter()
    with ShardWriter(out, clips_per_shard=shards) as writer, _progress() as progress:
        task = progress.add_task("rendering", total=num)
        for i in range(0, num, batch):
            clips = render_clips(config, seeds[i:i + batch], device=device)
            for j, clip in enumerate(clips.unbatch()):
                clip.meta.update(index=i + j, split=split)
                writer.write(clip.to("cpu"))
            progress.advance(task, len(seeds[i:i + batch]))
    elapsed = time.perf_counter() - start
    (Path(out) / "config.json").write_text(json.dumps({"seed": seed, "split": split, "num": num, **config.to_dict()}, indent=2))
    console.print(f"wrote {num} clips in {len(writer.written)} shard(s) to {out} ({num / elapsed:.2f} clips/s)")


@app.command()
def viz(
    source: str = typer.Argument(..., help="Shard directory, .tar file or glob."),
    out: Path = typer.Option(..., help="Output directory."),
    max_clips: int = typer.Option(4, min=1, help="Clips to draw."),
    fps: int = typer.Option(8, min=1),
    scale: int = typer.Option(2, min=1, help="Integer upscaling of frames before drawing."),
    max_tracks: int = typer.Option(128, min=1, help="Tracks to draw per clip."),
):
    """Write an MP4 and a GIF grid of all views with tracks, and a PNG of the camera trajectories, per clip."""
    import warnings

    from mvtrack.data import ReadStats, iter_shard, list_shards
    from mvtrack.viz import visualize_clip

    try:
        paths = list_shards(source)
    except FileNotFoundError as e:
        raise typer.BadParameter(str(e)) from None
    stats = ReadStats()
    done = 0
    with _progress() as progress, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = progress.add_task("drawing", total=max_clips)
        for path in paths:
            for clip in iter_shard(path, stats):
                index = clip.meta.get("index", done) if isinstance(clip.meta, dict) else done
                written = visualize_clip(clip, out, f"clip_{index:04d}", fps=fps, scale=scale, max_tracks=max_tracks)
                progress.advance(task)
                done += 1
                if done >= max_clips:
                    break
            if done >= max_clips:
                break
    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {w.message}")
    if stats.corrupt_shards or stats.skipped_samples:
        console.print(f"[yellow]{stats.corrupt_shards} corrupt shard(s), {stats.skipped_samples} skipped sample(s)[/yellow]")
    console.print(f"wrote {done} clip visualisation(s) to {out} (e.g. {written['mp4'].name}, {written['cameras'].name})"
                  if done else f"no readable clips in {source}")
    if not done:
        raise typer.Exit(1)
