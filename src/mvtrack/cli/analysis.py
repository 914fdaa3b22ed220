"""Analysis commands: ``analyze-layers`` (which attention layers already track) and ``track-features`` (zero-shot
tracking with a model's features)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from mvtrack.scenes.config import BASELINES

from ._app import MAX_SEED, MODEL_HELP, app, console, load_pipeline, parse_size, progress_bar


# the clips both analyses draw (the engine's baseline between views, the seed of the clip stream)
BASELINE = typer.Option("mixed", help="Camera baseline of the clips.")
SEED = typer.Option(0, min=0, max=MAX_SEED, help="Seed of the clip stream.")


@app.command(name="analyze-layers")
def analyze_layers(
    model: str = typer.Option(None, help=MODEL_HELP + " Pixel space."),
    out: Path = typer.Option(Path("outputs/layers"), help="Where layers.json and layers.png go."),
    clips: int = typer.Option(8, min=1, max=10000, help="Ground-truth clips (the val stream: not the held-out test "
                              "split)."),
    baseline: Literal[BASELINES] = BASELINE,
    sigma: float = typer.Option(0.5, min=0.0, max=1.0, help="Noise level of every frame (flow matching sigma)."),
    pairs: int = typer.Option(256, min=1, max=65536, help="Sampled correspondences per clip."),
    seed: int = SEED,
    frames: int = typer.Option(None, min=1, max=1024, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    views: int = typer.Option(None, min=1, max=64, help="Views (default: the model's training count)."),
    per_head: bool = typer.Option(False, "--per-head", help="Also score each attention head alone (heads.png)."),
):
    """Score every self-attention layer of a model as a tracker (attention argmax vs ground-truth tracks)."""
    from rich.table import Table

    from mvtrack.defaults import default_model
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.analysis import analyze_layers as analyze
    from mvtrack.tracking.analysis import MEAN_HEADS, NO_MOTION, rank_heads

    check_output_dir(out)
    model = model or default_model()
    pipe = load_pipeline(model, "cpu", "float32")  # its clips and scores are on the CPU
    hw = parse_size(size) if size else None
    with progress_bar() as progress:
        task = progress.add_task("analysing clips", total=clips)
        scores, s = analyze(pipe, model, out, clips, baseline, sigma, pairs, seed, frames, hw, views, per_head,
                            progress=lambda: progress.advance(task))
    table = Table(title=f"attention as a tracker: {clips} val clips, {s.views} views x {s.frames} frames, "
                        f"{s.height}x{s.width}, sigma {sigma} (PCK in tokens)")
    for col in ("layer", "pairs", "PCK@1 all", "PCK@2 all", "PCK@4 all", "PCK@2 temporal", "PCK@2 cross-view",
                "PCK@2 cross-view-time", "cycle"):
        table.add_column(col, justify="right")
    by = {(r.layer, r.kind): r for r in scores if r.head == MEAN_HEADS}
    for layer in sorted({r.layer for r in scores}):
        a = by[(layer, "all")]
        table.add_row("no motion" if layer == NO_MOTION else str(layer), str(a.pairs), f"{a.pck1:.3f}",
                      f"{a.pck2:.3f}", f"{a.pck4:.3f}", *(f"{by[(layer, k)].pck2:.3f}" for k in
                      ("temporal", "cross_view", "cross_view_time")), "—" if layer == NO_MOTION else f"{a.cycle:.3f}")
    console.print(table)
    if per_head:
        table = Table(title=f"attention heads as trackers, best first (all pairs; no motion PCK@2 "
                            f"{by[(NO_MOTION, 'all')].pck2:.3f}; head-averaged rows in the table above)")
        for col in ("rank", "layer", "head", "PCK@1", "PCK@2", "PCK@4", "PCK@2 cross-view", "cycle"):
            table.add_column(col, justify="right")
        heads = {(r.layer, r.head, r.kind): r for r in scores}
        for i, r in enumerate(rank_heads(scores), 1):
            table.add_row(str(i), str(r.layer), str(r.head), f"{r.pck1:.3f}", f"{r.pck2:.3f}", f"{r.pck4:.3f}",
                          f"{heads[(r.layer, r.head, 'cross_view')].pck2:.3f}", f"{r.cycle:.3f}")
        console.print(table)
    console.print(f"wrote {out / 'layers.json'}, {out / 'layers.png'}" + (" and heads.png" if per_head else ""))


@app.command(name="track-features")
def track_features(
    model: list[str] = typer.Option([], help="Model directories or presets (repeatable; default: the embedded "
                                    "weights/mvtrack-S of a source checkout)."),
    clips: int = typer.Option(8, min=1, max=10000, help="Held-out clips (the test stream)."),
    features: str = typer.Option("qk", help="qk (a layer's queries against keys) or refined (Track4Gen refiner)."),
    layer: int = typer.Option(None, min=0, help="Layer for qk (default: the middle block)."),
    sigma: float = typer.Option(0.3, min=0.0, max=1.0, help="Noise level of every frame."),
    threshold: float = typer.Option(0.5, min=-1.0, max=1.0, help="Cosine below which a point is predicted occluded."),
    baseline: Literal[BASELINES] = BASELINE,
    seed: int = SEED,
    out: Path = typer.Option(None, help="Optional JSON file for the scores."),
):
    """Zero-shot tracking with a model's features (Track4Gen 4.3.1), scored with TAP-Vid beside no motion."""
    from rich.table import Table

    from mvtrack.defaults import default_model
    from mvtrack.outputs import check_output_file
    from mvtrack.runners.analysis import zero_shot_tracking

    if out is not None:
        check_output_file(out)
    pipes = {spec: load_pipeline(spec, "cpu", "float32") for spec in (model or [default_model()])}
    try:
        rows = zero_shot_tracking(pipes, clips, features, layer, sigma, threshold, baseline, seed)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    table = Table(title=f"zero-shot tracking with {features} features, {clips} held-out clips "
                        "(TAP-Vid first, 256 scale)")
    for col in ("model", "AJ", "delta_avg", "OA"):
        table.add_column(col, justify="right")
    for name, r in rows.items():
        table.add_row(name, f"{r['AJ']:.3f}", f"{r['delta_avg']:.3f}", f"{r['OA']:.3f}")
    console.print(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"features": features, "layer": layer, "sigma": sigma, "clips": clips,
                                   "scores": rows}, indent=1))
