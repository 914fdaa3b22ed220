"""Commands that prepare training data once: ``encode`` (cached VAE latents and text embeddings)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer

from mvtrack.defaults import CAPTION, LATENT_DTYPES, TEXT_TOKENS

from ._app import DEVICE_HELP, app, console, progress_bar


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
    max_length: int = typer.Option(TEXT_TOKENS, min=1, help="Text tokens per prompt (the trainer's text.max_length)."),
    device: str = typer.Option("auto", help=DEVICE_HELP),
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
