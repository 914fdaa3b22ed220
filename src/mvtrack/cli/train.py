"""Training commands: ``train`` and ``export``."""

from __future__ import annotations

from pathlib import Path

import typer

from ._app import app, console


@app.command()
def train(
    config: Path = typer.Option(..., help="YAML training config, e.g. configs/camera_only_S.yaml."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set max_steps=100 --set data.frames=4."
    ),
    resume: bool = typer.Option(True, help="Resume from the latest checkpoint in output_dir if there is one."),
):
    """Train a model (one process, or several under `accelerate launch`)."""
    from mvtrack.training import TrainConfig, train_run

    cfg = TrainConfig.from_yaml(config, set_)
    metrics = train_run(cfg, resume)
    console.print(f"done: {metrics}; weights (EMA) in {Path(cfg.output_dir) / 'final'}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint directory, or a run's output_dir (its latest checkpoint)."
    ),
    out: Path = typer.Option(..., help="Model directory to write."),
    half: bool = typer.Option(True, help="Store float16 weights (half the size; loaded back as float32; Wan's float32 "
                              "modules stay float32)."),
    lora: str = typer.Option(
        None, help="A LoRA run: merge (fold the adapters into the weights) or adapter (adapters and trained modules "
        "only, the base model referred to by path); default: the run's lora.export."),
    copy_text_encoder: bool = typer.Option(False, help="Copy the base's text_encoder/ instead of linking to it."),
):
    """Write a checkpoint's EMA weights as a model directory that `generate` and `demo` load (with the base's
    scheduler, tokenizer, text encoder and VAE for a Wan2.1 root)."""
    import torch

    from mvtrack.training import export_checkpoint

    try:
        path = export_checkpoint(checkpoint, out, torch.float16 if half else torch.float32, lora=lora,
                                 copy_text_encoder=copy_text_encoder)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    console.print(f"wrote {path} ({size:.1f} MiB)")
