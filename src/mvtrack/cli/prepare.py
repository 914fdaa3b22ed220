"""Commands that prepare training data once: ``encode`` (cached VAE latents and text embeddings) and
``prepare-tracks`` (training tracks for multi-camera clips that have none)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer

from mvtrack.defaults import CAPTION, LATENT_DTYPES, TEXT_TOKENS

from ._app import DEVICE, app, console, progress_bar


@app.command()
def encode(
    model: Path = typer.Option(..., help="Wan2.1 root (vae/, and text_encoder/ + tokenizer/ for the captions)."),
    source: str = typer.Option(..., help="Video shards to encode: a directory, a .tar file or a glob."),
    out: Path = typer.Option(..., help="Output directory for the latent shards."),
    shards: int = typer.Option(64, min=1, help="Clips per shard."),
    dtype: Literal[LATENT_DTYPES] = typer.Option(LATENT_DTYPES[0], help="Storage of latents and embeddings."),
    text: bool = typer.Option(True, help="Also store the captions' UMT5 embeddings (and the empty prompt's)."),
    caption: str = typer.Option(CAPTION, help="Caption of clips that carry none (the trainer's text.default_caption)."),
    depth: bool = typer.Option(False, help="Keep the clips' depth (float16), for Track2View's source_depth."),
    max_length: int = typer.Option(TEXT_TOKENS, min=1, max=4096, help="Text tokens per prompt (the trainer's "
                                   "text.max_length)."),
    device: str = DEVICE,
):
    """Encode video shards into VAE latents (and text embeddings) once; training reads them without a VAE pass."""
    from mvtrack.training.encode import encode_shards

    start = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("encoding", total=None)
        stats = encode_shards(model, source, out, shards, dtype, text, caption, depth, max_length, device,
                              progress=lambda n: progress.update(task, completed=n))
    elapsed = time.perf_counter() - start
    what = "latents and text embeddings" if stats.text else "latents"
    skipped = f", skipped {stats.skipped} corrupt sample(s)" if stats.skipped else ""
    console.print(f"wrote the {what} of {stats.clips} clips in {stats.shards} shard(s) to {out} "
                  f"({stats.clips / elapsed:.2f} clips/s{skipped}); train on them with data.source={out}")


@app.command(name="prepare-tracks")
def prepare_tracks(
    source: str = typer.Option(..., help="Video shards of multi-camera clips: a directory, a .tar file or a glob."),
    out: Path = typer.Option(..., help="Output directory for the shards with tracks (not the source's)."),
    method: str = typer.Option("auto", help="flow: 2D tracks by Track2View's reverse-and-concatenate (no cameras "
                               "needed; an epipolar check where they are known); auto: flow, plus 3D points from "
                               "view 0's stereo depth where they agree with it (known, moving cameras); stereo: "
                               "the stereo depth's static points alone."),
    tracks: int = typer.Option(1024, min=1, max=65536, help="Tracks per clip, from a grid over view 0's first frame."),
    shards: int = typer.Option(64, min=1, help="Clips per shard."),
    video_format: str = typer.Option("png", help="How the output shards store video: png, mp4, jpg or npy."),
):
    """Write training tracks into multi-camera clips that have none (MVTrack4Gen, Track4Gen, Track2View)."""
    from mvtrack.data.clip_tracks import METHODS, prepare_track_shards, source_shards
    from mvtrack.data.shards import VIDEO_FORMATS
    from mvtrack.outputs import check_output_dir

    if method not in METHODS:
        raise typer.BadParameter(f"expected one of {', '.join(METHODS)}, got {method!r}", param_hint="--method")
    if video_format not in VIDEO_FORMATS:
        raise typer.BadParameter(f"expected one of {', '.join(VIDEO_FORMATS)}, got {video_format!r}",
                                 param_hint="--video-format")
    if Path(source).is_dir() and Path(source).resolve() == out.resolve():
        raise typer.BadParameter(f"{out} is the --source directory; write the shards with tracks elsewhere",
                                 param_hint="--out")
    source_shards(source)  # a wrong --source is named before --out is created
    check_output_dir(out, "--out")
    start = time.perf_counter()
    with progress_bar() as progress:
        task = progress.add_task("tracking", total=None)
        stats = prepare_track_shards(source, out, method, tracks, shards, video_format,
                                     progress=lambda n: progress.update(task, completed=n))
    elapsed = time.perf_counter() - start
    lifted = f", {stats['lifted']} with 3D points" if method != "flow" else ""
    skipped = f", skipped {stats['skipped']} corrupt sample(s)" if stats["skipped"] else ""
    console.print(f"wrote {stats['clips']} clips with {stats['tracks']} tracks{lifted} in {stats['shards']} "
                  f"shard(s) to {out} ({elapsed / max(stats['clips'], 1):.1f} s per clip; "
                  f"{100 * stats['target_visible']:.0f}% of the tracks followed into the other views{skipped}); "
                  f"train on them with data.source={out}")
