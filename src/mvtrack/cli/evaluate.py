"""Evaluation commands: ``eval`` (score any system's videos) and ``bench`` (run and score methods on a split)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import typer

from mvtrack.defaults import SAMPLING_STEPS
from mvtrack.evaluation.matching import MATCHERS

from ._app import (
    DEVICE,
    DTYPE,
    MAX_SEED,
    MAX_STEPS,
    app,
    console,
    device_dtype,
    print_summary,
    progress_bar,
    report_skipped,
    tasks,
)

# what the scoring runs, for `eval` and `bench` alike (``runners.evaluate.EvalSettings``)
MATCHER = typer.Option("auto", help="Matcher for Mat.Pix and the pose AUC.")
ESTIMATE_CAMERAS = typer.Option(True, help="Estimate camera trajectories with COLMAP (RotErr / TransErr / CamMC).")
RECOVER_TRACKS = typer.Option(True, help="Recover tracks by optical flow and score them against annotations.")


@app.command(name="eval")
def eval_(
    pred: Path = typer.Option(..., help="Generated videos: PRED/<clip>/view_<v>.mp4 (v >= 1)."),
    gt: Path = typer.Option(..., help="Ground truth: GT/<clip>/view_<v>.txt cameras, optional view_<v>.mp4 and "
                            "annotations.npz (docs/evaluation.md)."),
    out: Path = typer.Option(None, help="Where results.json and report.html go (default: PRED/../eval_<name>)."),
    matcher: Literal[MATCHERS] = MATCHER,
    cameras: bool = ESTIMATE_CAMERAS,
    tracks: bool = RECOVER_TRACKS,
    mode: str = typer.Option("rerender", help="rerender (view 0 is the source) or joint (every view generated, "
                             "PRED/<clip>/view_0.mp4 too; pairs of generated views scored)."),
):
    """Score any system's generated videos against the requested cameras and the ground truth."""
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.evaluate import EvalSettings, evaluate_dirs
    from mvtrack.runners.report import write_report

    settings = EvalSettings(matcher=matcher, cameras=cameras, tracks=tracks, mode=mode)
    out = check_output_dir(out or pred.parent / f"eval_{pred.name}")
    clips = sorted(p for p in pred.iterdir() if p.is_dir()) if pred.is_dir() else []
    try:
        with progress_bar() as progress:
            advance = tasks(progress)("scoring clips", len(clips))
            result = evaluate_dirs(pred, gt, settings, progress=advance)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=1, allow_nan=True))
    report = write_report(result, out, title=f"mvtrack eval: {pred}")
    report_skipped(result.skipped)
    print_summary({pred.name: result.summary}, f"{result.summary['views_scored']} views scored, "
                  f"{result.summary['views_skipped']} skipped")
    console.print(f"wrote {out / 'results.json'} and {report}")
    if result.summary["views_scored"] == 0:
        console.print("[red]error[/]: no view was scored (every clip or view was skipped; reasons above)")
        raise typer.Exit(1)


@app.command()
def bench(
    config: Path = typer.Option(Path("configs/bench/heldout.yaml"), help="Benchmark split (YAML)."),
    checkpoint: list[str] = typer.Option([], help="Model directory or preset to score (repeatable)."),
    method: list[str] = typer.Option(
        [], help="Reference row(s): synthetic splits: ground_truth, copy_source, source_depth_splat, depth_warp, "
        "noise; real-footage splits: ground_truth, copy_source, nearest_source, stereo_splat."
    ),
    out: Path = typer.Option(Path("outputs/bench"), help="Output root: OUT/<method>/{pred,results.json,report.html}."),
    steps: int = typer.Option(SAMPLING_STEPS, min=1, max=MAX_STEPS, help="Denoising steps for checkpoints."),
    seed: list[int] = typer.Option([0], min=0, max=MAX_SEED, help="Sampling seed(s) of --checkpoint: clip i draws its "
                                   "noise from seed + i."),
    sensitivity: bool = typer.Option(False, help="Also measure camera sensitivity of --checkpoint (3x sampling)."),
    matcher: Literal[MATCHERS] = MATCHER,
    cameras: bool = ESTIMATE_CAMERAS,
    tracks: bool = RECOVER_TRACKS,
    device: str = DEVICE,
    dtype: str = DTYPE,
):
    """Run methods (a results config's `methods:`, plus --method / --checkpoint) on a held-out split (synthetic, or
    real clips: configs/bench/re10k_*.yaml), score them (mvtrack eval) and write the results table OUT/summary.md."""
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.bench import BenchRun, add_methods, all_reference_methods, run_bench
    from mvtrack.runners.evaluate import EvalSettings

    where, precision = device_dtype(device, dtype)
    check_output_dir(out)
    for m in method:
        if m not in all_reference_methods():
            raise typer.BadParameter(f"expected one of {all_reference_methods()}, got {m!r}", param_hint="--method")
    try:
        run = add_methods(BenchRun.from_yaml(config), method, checkpoint, seed, steps, sensitivity)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="--config") from None
    settings = EvalSettings(matcher=matcher, cameras=cameras, tracks=tracks)
    with progress_bar() as progress:
        try:
            rows = run_bench(run, out, settings, progress=tasks(progress), device=where, dtype=precision)
        except (FileNotFoundError, ValueError) as e:
            raise typer.BadParameter(str(e)) from None
    for row in rows.values():
        report_skipped(row.get("skipped", []))
    print_summary(rows, run.split.describe())
    console.print(f"wrote {out}/<method>/results.json and report.html, and {out}/summary.md")
