"""``mvtrack encode`` and ``mvtrack prepare-tracks``: commands that prepare training data once (cached latents, tracks
of real multi-camera clips). Registered on the main app by ``cli``."""

from __future__ import annotations

import time
from pathlib import Path

import typer


def register(app: typer.Typer, console, progress_bar) -> None:
    @app.command()
    def encode(
        model: Path = typer.Option(..., help="Wan2.1 root (vae/, and text_encoder/ + tokenizer/ for the captions)."),
        source: str = typer.Option(..., help="Video shards to encode: a directory, a .tar file or a glob."),
        out: Path = typer.Option(..., help="Output directory for the latent shards."),
        shards: int = typer.Option(64, min=1, help="Clips per shard."),
        dtype: str = typer.Option("float16", help="Storage of latents and embeddings: float16 or float32."),
        text: bool = typer.Option(True, help="Also store the captions' UMT5 embeddings (and the empty prompt's)."),
        caption: str = typer.Option(None, help="Caption of clips that carry none (default: the trainer's)."),
        depth: bool = typer.Option(False, help="Keep the clips' depth (float16), for Track2View's source_depth."),
        max_length: int = typer.Option(512, min=1, max=4096, help="Text tokens per prompt (the trainer's "
                                       "text.max_length)."),
        device: str = typer.Option("auto", help="Where the VAE and UMT5 run: auto, cpu or cuda[:N]."),
    ):
        """Encode video shards into VAE latents (and text embeddings) once; training reads them without a VAE pass."""
        from mvtrack.training.encode import DEFAULT_CAPTION, encode_shards

        start = time.perf_counter()
        with progress_bar() as progress:
            task = progress.add_task("encoding", total=None)
            stats = encode_shards(model, source, out, shards, dtype, text, caption or DEFAULT_CAPTION, depth,
                                  max_length, device, progress=lambda n: progress.update(task, completed=n))
        elapsed = time.perf_counter() - start
        what = "latents and text embeddings" if stats.text else "latents"
        skipped = f", skipped {stats.skipped} corrupt sample(s)" if stats.skipped else ""
        console.print(f"wrote the {what} of {stats.clips} clips in {stats.shards} shard(s) to {out} "
                      f"({stats.clips / elapsed:.2f} clips/s{skipped}); train on them with data.source={out}")
