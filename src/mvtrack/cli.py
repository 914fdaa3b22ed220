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
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


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
        config = SynthConfig(
            views=views, frames=frames, height=height, width=width, num_tracks=tracks, baseline=baseline
        )
        seeds = [clip_seed(seed, i, split) for i in range(num)]
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    start = time.perf_counter()
    with ShardWriter(out, clips_per_shard=shards) as writer, _progress() as progress:
        task = progress.add_task("rendering", total=num)
        for i in range(0, num, batch):
            clips = render_clips(config, seeds[i : i + batch], device=device)
            for j, clip in enumerate(clips.unbatch()):
                clip.meta.update(index=i + j, split=split)
                writer.write(clip.to("cpu"))
            progress.advance(task, len(seeds[i : i + batch]))
    elapsed = time.perf_counter() - start
    (Path(out) / "config.json").write_text(
        json.dumps({"seed": seed, "split": split, "num": num, **config.to_dict()}, indent=2)
    )
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
        console.print(
            f"[yellow]{stats.corrupt_shards} corrupt shard(s), {stats.skipped_samples} skipped sample(s)[/yellow]"
        )
    console.print(
        f"wrote {done} clip visualisation(s) to {out} (e.g. {written['mp4'].name}, {written['cameras'].name})"
        if done
        else f"no readable clips in {source}"
    )
    if not done:
        raise typer.Exit(1)


# the embedded default, in the source tree (an editable install; other installs pass --model)
DEFAULT_MODEL = str(Path(__file__).resolve().parents[2] / "weights" / "mvtrack-S")


@app.command()
def train(
    config: Path = typer.Option(..., help="YAML training config, e.g. configs/camera_only_S.yaml."),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a config key, e.g. --set max_steps=100 --set data.frames=4."
    ),
    resume: bool = typer.Option(True, help="Resume from the latest checkpoint in output_dir if there is one."),
):
    """Train a model (one process, or several under `accelerate launch`)."""
    from mvtrack.training import TrainConfig, Trainer

    try:
        cfg = TrainConfig.from_yaml(config, set_)
    except (ValueError, FileNotFoundError) as e:
        raise typer.BadParameter(str(e)) from None
    metrics = Trainer(cfg, resume=resume).train()
    console.print(f"done: {metrics}; weights (EMA) in {Path(cfg.output_dir) / 'final'}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint directory, or a run's output_dir (its latest checkpoint)."
    ),
    out: Path = typer.Option(..., help="Model directory to write."),
    half: bool = typer.Option(True, help="Store float16 weights (half the size; loaded back as float32)."),
):
    """Write a checkpoint's EMA weights as a model directory that `generate` and `demo` load."""
    import torch

    from mvtrack.training import export_checkpoint

    try:
        path = export_checkpoint(checkpoint, out, torch.float16 if half else torch.float32)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    console.print(f"wrote {path} ({size:.1f} MiB)")


def _load_pipeline(model: str):
    from mvtrack.pipelines import MultiViewPipeline

    try:
        pipe = MultiViewPipeline.from_model(model)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


@app.command()
def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (default: the embedded mvtrack-S)."),
    out: Path = typer.Option(Path("outputs/demo"), help="Output directory."),
    clips: int = typer.Option(4, min=1, help="Held-out synthetic clips to re-render."),
    steps: int = typer.Option(25, min=1, help="Denoising steps."),
    seed: int = typer.Option(0, help="Seed of the clip stream."),
    split: str = typer.Option("test", help="Clip stream: test (held out) or val (for choosing checkpoints)."),
    frames: int = typer.Option(None, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
):
    """Re-render held-out synthetic clips (view 0 given, view 1 generated) and score them against ground truth."""
    from rich.table import Table

    from mvtrack.runners import RerenderSettings, rerender_heldout

    pipe = _load_pipeline(model)
    height, width = parse_size(size) if size else (None, None)
    settings = RerenderSettings.for_model(
        model, num_clips=clips, steps=steps, seed=seed, split=split, frames=frames, height=height, width=width
    )
    start = time.perf_counter()
    with _progress() as progress:
        task = progress.add_task("re-rendering", total=clips)
        result = rerender_heldout(pipe, settings, out, progress=lambda n: progress.advance(task, n))
    table = Table(
        title=f"re-rendering, {clips} {settings.split} clips, {settings.height}x{settings.width}, {settings.frames} frames"
    )
    for col in ("method", "PSNR (dB)", "SSIM"):
        table.add_column(col)
    names = {
        "model": f"model ({Path(model).name})",
        "copy_source": "copy source view",
        "depth_warp": "GT-depth warp (upper ref.)",
    }
    for m, row in result["mean"].items():
        table.add_row(names[m], f"{row['psnr']:.2f}", f"{row['ssim']:.3f}")
    console.print(table)
    console.print(
        f"wrote {out}/clip_*.mp4 (source | generated | ground truth), contact_sheet.png and metrics.json "
        f"in {time.perf_counter() - start:.1f} s"
    )


@app.command()
def generate(
    out: Path = typer.Option(..., help="Output directory."),
    video: Path = typer.Option(
        None, help="Source video (MP4, GIF or a folder of frames): re-render it along --target."
    ),
    image: Path = typer.Option(None, help="A first frame: generate every view from it (image-to-video)."),
    cameras: Path = typer.Option(None, help="RealEstate10K camera file of the source (default: a static camera)."),
    target: list[str] = typer.Option(
        ["orbit:15"],
        help="Target trajectory per generated view: a RealEstate10K file "
        "or NAME[:AMOUNT] (orbit:30, arc:15, pan:10, tilt:10, dolly:0.5, static).",
    ),
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (default: the embedded mvtrack-S)."),
    frames: int = typer.Option(None, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    fov: float = typer.Option(55.0, help="Horizontal field of view in degrees when no camera file is given."),
    steps: int = typer.Option(25, min=1, help="Denoising steps."),
    seed: int = typer.Option(0, help="Seed of the initial noise."),
    joint: bool = typer.Option(
        False, help="Generate all targets in one pass instead of one (source, target) pair each."
    ),
    fps: int = typer.Option(8, min=1),
):
    """Generate new views of a video along camera trajectories, or N views from a first frame."""
    import torch

    from mvtrack.runners import RerenderSettings, load_frames, source_cameras, target_cameras
    from mvtrack.viz import tile_views, to_uint8_frames, write_mp4

    if (video is None) == (image is None):
        raise typer.BadParameter("give exactly one of --video (re-render) or --image (image-to-video)")
    defaults = RerenderSettings.for_model(model)
    num_frames = frames or defaults.frames
    hw = parse_size(size) if size else (defaults.height, defaults.width)
    pipe = _load_pipeline(model)
    try:
        src_frames = load_frames(video or image, 1 if image else num_frames, hw)
        w2c0, K0 = source_cameras(cameras, num_frames, hw, fov)
        targets = [
            target_cameras(t, w2c0, K0, hw, torch.Generator().manual_seed(seed + i)) for i, t in enumerate(target)
        ]
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    source = torch.zeros(num_frames, 3, *hw)
    source[: src_frames.shape[0]] = src_frames
    groups = [list(range(len(targets)))] if joint or image else [[i] for i in range(len(targets))]
    generated = [None] * len(targets)
    source_out = source
    with _progress() as progress:
        task = progress.add_task("generating", total=len(groups))
        for group in groups:
            w2c = torch.stack([w2c0] + [targets[i][0] for i in group])[None]  # (1, V, T, 4, 4)
            K = torch.stack([K0] + [targets[i][1] for i in group])[None]
            vid = torch.zeros(1, len(group) + 1, num_frames, 3, *hw)
            vid[0, 0] = source
            observed = torch.zeros(1, len(group) + 1, num_frames, dtype=torch.bool)
            observed[0, 0, : src_frames.shape[0] if image else num_frames] = True
            try:
                result = (
                    pipe(
                        w2c, K, vid, observed, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed)
                    )
                    .video[0]
                    .cpu()
                )
            except ValueError as e:
                raise typer.BadParameter(str(e)) from None
            if image:
                source_out = result[0]
            for j, i in enumerate(group):
                generated[i] = result[j + 1]
            progress.advance(task)
    out.mkdir(parents=True, exist_ok=True)
    views = [to_uint8_frames(source_out)] + [to_uint8_frames(g) for g in generated]
    write_mp4(out / "view_00_source.mp4", views[0], fps)
    for i, frames_i in enumerate(views[1:], 1):
        write_mp4(out / f"view_{i:02d}.mp4", frames_i, fps)
    write_mp4(out / "grid.mp4", tile_views(views, columns=len(views)), fps)
    console.print(f"wrote {len(views)} views and grid.mp4 (source | " + " | ".join(target) + f") to {out}")


def _eval_settings(matcher: str, cameras: bool, tracks: bool):
    from mvtrack.evaluation.matching import MATCHERS
    from mvtrack.runners.evaluate import EvalSettings

    if matcher not in MATCHERS:
        raise typer.BadParameter(f"expected one of {MATCHERS}, got {matcher!r}", param_hint="--matcher")
    return EvalSettings(matcher=matcher, cameras=cameras, tracks=tracks)


def _print_summary(rows: dict[str, dict], title: str) -> None:
    """One table row per evaluated method: ``rows[name] = summary``."""
    from rich.table import Table

    from mvtrack.runners.report import summary_rows

    header, body = summary_rows(rows)
    table = Table(title=title)
    for i, col in enumerate(header):
        table.add_column(col, justify="left" if i == 0 else "right")
    for cells in body:
        table.add_row(*cells)
    console.print(table)


def _report_skipped(skipped: list[dict]) -> None:
    for x in skipped:
        console.print(f"[yellow]skipped[/] {x['clip']} view {x['view']}: {x['reason']}")


@app.command(name="eval")
def eval_(
    pred: Path = typer.Option(..., help="Generated videos: PRED/<clip>/view_<v>.mp4 (v >= 1)."),
    gt: Path = typer.Option(..., help="Ground truth: GT/<clip>/view_<v>.txt cameras, optional view_<v>.mp4 and "
                            "annotations.npz (docs/evaluation.md)."),
    out: Path = typer.Option(None, help="Where results.json and report.html go (default: PRED/../eval_<name>)."),
    matcher: str = typer.Option("auto", help="Matcher for Mat.Pix and the pose AUC: xfeat, sift or auto."),
    cameras: bool = typer.Option(True, help="Estimate camera trajectories with COLMAP (RotErr / TransErr / CamMC)."),
    tracks: bool = typer.Option(True, help="Recover tracks by optical flow and score them against annotations."),
):
    """Score any system's generated videos against the requested cameras and the ground truth."""
    from mvtrack.runners.evaluate import evaluate_dirs
    from mvtrack.runners.report import write_report

    settings = _eval_settings(matcher, cameras, tracks)
    out = out or pred.parent / f"eval_{pred.name}"
    clips = sorted(p for p in pred.iterdir() if p.is_dir()) if pred.is_dir() else []
    try:
        with _progress() as progress:
            task = progress.add_task("scoring clips", total=len(clips))
            result = evaluate_dirs(pred, gt, settings, progress=lambda _: progress.advance(task))
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result.to_json(), indent=1, allow_nan=True))
    report = write_report(result, out, title=f"mvtrack eval: {pred}")
    _report_skipped(result.skipped)
    _print_summary({pred.name: result.summary}, f"{result.summary['views_scored']} views scored, "
                   f"{result.summary['views_skipped']} skipped")
    console.print(f"wrote {out / 'results.json'} and {report}")


@app.command()
def bench(
    config: Path = typer.Option(Path("configs/bench/heldout.yaml"), help="Benchmark split (YAML)."),
    checkpoint: list[str] = typer.Option([], help="Model directory or preset to score (repeatable)."),
    method: list[str] = typer.Option([], help="Reference row(s): ground_truth, copy_source, depth_warp, noise."),
    out: Path = typer.Option(Path("outputs/bench"), help="Output root: OUT/<method>/{pred,results.json,report.html}."),
    steps: int = typer.Option(25, min=1, help="Denoising steps for checkpoints."),
    seed: int = typer.Option(0, help="Sampling seed: clip i draws its noise from seed + i."),
    matcher: str = typer.Option("auto", help="Matcher for Mat.Pix and the pose AUC: xfeat, sift or auto."),
    cameras: bool = typer.Option(True, help="Estimate camera trajectories with COLMAP."),
    tracks: bool = typer.Option(True, help="Recover tracks by optical flow and score them."),
):
    """Run checkpoints and reference methods on the held-out synthetic split and score them (mvtrack eval)."""
    from mvtrack.runners.bench import REFERENCE_METHODS, BenchConfig, write_ground_truth, write_predictions
    from mvtrack.runners.evaluate import evaluate_dirs
    from mvtrack.runners.report import markdown_table, write_report

    if not checkpoint and not method:
        raise typer.BadParameter("give at least one --checkpoint or --method")
    for m in method:
        if m not in REFERENCE_METHODS:
            raise typer.BadParameter(f"expected one of {REFERENCE_METHODS}, got {m!r}", param_hint="--method")
    try:
        cfg = BenchConfig.from_yaml(config)
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="--config") from None
    settings = _eval_settings(matcher, cameras, tracks)
    total = sum(g.clips for g in cfg.groups)
    # a run is named after its directory (or the run directory above an exported ``final/``)
    names = [Path(c).parent.name if Path(c).name == "final" else (Path(c).name or c) for c in checkpoint]
    if len(set(names)) < len(names):
        raise typer.BadParameter(f"checkpoints must have distinct names, got {names}", param_hint="--checkpoint")
    runs = [(m, m, None) for m in method] + [(n, "model", c) for n, c in zip(names, checkpoint)]
    rows = {}
    with _progress() as progress:
        task = progress.add_task(f"ground truth ({cfg.name})", total=total)
        gt = write_ground_truth(cfg, out / "gt" / cfg.name, progress=lambda: progress.advance(task))
        for name, kind, model in runs:
            pipe = _load_pipeline(model) if model else None
            task = progress.add_task(f"{name}: predicting", total=total)
            pred = write_predictions(cfg, out / name / "pred", kind, pipe=pipe, steps=steps, seed=seed,
                                     progress=lambda t=task: progress.advance(t))
            task = progress.add_task(f"{name}: scoring", total=total)
            result = evaluate_dirs(pred, gt, settings, progress=lambda _, t=task: progress.advance(t))
            result.summary["method"], result.summary["split"] = name, cfg.name
            (out / name / "results.json").write_text(json.dumps(result.to_json(), indent=1, allow_nan=True))
            write_report(result, out / name, title=f"mvtrack bench: {name} on {cfg.name}",
                         notes=f"{total} held-out clips of {config}; {steps} steps, seed {seed}" if model else "")
            _report_skipped(result.skipped)
            rows[name] = result.summary
    _print_summary(rows, f"{cfg.name}: {total} clips, {cfg.views} views x {cfg.frames} frames, "
                   f"{cfg.height}x{cfg.width}")
    (out / "summary.md").write_text(markdown_table(rows))
    console.print(f"wrote {out}/<method>/results.json and report.html, and {out}/summary.md")


@app.command(name="analyze-layers")
def analyze_layers(
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (pixel space)."),
    out: Path = typer.Option(Path("outputs/layers"), help="Where layers.json and layers.png go."),
    clips: int = typer.Option(8, min=1, help="Ground-truth clips (the val stream: not the held-out test split)."),
    baseline: str = typer.Option("mixed", help="Camera baseline of the clips: small, wide or mixed."),
    sigma: float = typer.Option(0.5, min=0.0, max=1.0, help="Noise level of every frame (flow matching sigma)."),
    pairs: int = typer.Option(256, min=1, help="Sampled correspondences per clip."),
    seed: int = typer.Option(0),
    frames: int = typer.Option(None, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    views: int = typer.Option(None, help="Views (default: the model's training count)."),
):
    """Score every self-attention layer of a model as a tracker (attention argmax vs ground-truth tracks)."""
    from rich.table import Table

    from mvtrack.runners import RerenderSettings
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    from mvtrack.tracking.analysis import NO_MOTION, as_dicts, attention_scores, merge_scores, plot_scores

    pipe = _load_pipeline(model)
    net = pipe.transformer
    if pipe.codec.channels != 3:
        raise typer.BadParameter("layer analysis needs a pixel-space model (tracks are in pixels)",
                                 param_hint="--model")
    height, width = parse_size(size) if size else (None, None)
    s = RerenderSettings.for_model(model, frames=frames, height=height, width=width, views=views)
    try:
        config = SynthConfig(views=s.views, frames=s.frames, height=s.height, width=s.width, num_tracks=pairs,
                             baseline=baseline)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    net.eval()
    batches = []
    with _progress() as progress:
        task = progress.add_task("analysing clips", total=clips)
        for i in range(clips):
            clip = render_clips(config, [clip_seed(seed, i, "val")])
            batches.append(attention_scores(net, clip, sigma=sigma, num_pairs=pairs, seed=seed + i))
            progress.advance(task)
    scores = merge_scores(batches)
    out.mkdir(parents=True, exist_ok=True)
    (out / "layers.json").write_text(json.dumps({"model": model, "sigma": sigma, "clips": clips, "baseline": baseline,
                                                 "scores": as_dicts(scores)}, indent=1))
    plot_scores(scores, out / "layers.png", f"{Path(model).name}: attention argmax as a tracker (sigma {sigma})")
    table = Table(title=f"attention as a tracker: {clips} val clips, {s.views} views x {s.frames} frames, "
                        f"{s.height}x{s.width}, sigma {sigma} (PCK in tokens)")
    for col in ("layer", "pairs", "PCK@1 all", "PCK@2 all", "PCK@4 all", "PCK@2 temporal", "PCK@2 cross-view",
                "PCK@2 cross-view-time", "cycle"):
        table.add_column(col, justify="right")
    by = {(r.layer, r.kind): r for r in scores}
    for layer in sorted({r.layer for r in scores}):
        a = by[(layer, "all")]
        table.add_row("no motion" if layer == NO_MOTION else str(layer), str(a.pairs), f"{a.pck1:.3f}",
                      f"{a.pck2:.3f}", f"{a.pck4:.3f}", *(f"{by[(layer, k)].pck2:.3f}" for k in
                      ("temporal", "cross_view", "cross_view_time")), "—" if layer == NO_MOTION else f"{a.cycle:.3f}")
    console.print(table)
    console.print(f"wrote {out / 'layers.json'} and {out / 'layers.png'}")


@app.command(name="track-features")
def track_features(
    model: list[str] = typer.Option([DEFAULT_MODEL], help="Model directories or presets (repeatable)."),
    clips: int = typer.Option(8, min=1, help="Held-out clips (the test stream)."),
    features: str = typer.Option("qk", help="qk (a layer's queries against keys) or refined (Track4Gen refiner)."),
    layer: int = typer.Option(None, help="Layer for qk (default: the middle block)."),
    sigma: float = typer.Option(0.3, min=0.0, max=1.0, help="Noise level of every frame."),
    threshold: float = typer.Option(0.5, help="Cosine below which a point is predicted occluded."),
    baseline: str = typer.Option("mixed", help="Camera baseline of the clips: small, wide or mixed."),
    seed: int = typer.Option(0),
    out: Path = typer.Option(None, help="Optional JSON file for the scores."),
):
    """Zero-shot tracking with a model's features (Track4Gen 4.3.1), scored with TAP-Vid beside no motion."""
    from rich.table import Table

    from mvtrack.runners import RerenderSettings
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    import numpy as np

    from mvtrack.tracking.zero_shot import FEATURES, feature_tracks, no_motion_tracks, score_feature_tracks

    if features not in FEATURES:
        raise typer.BadParameter(f"expected one of {FEATURES}, got {features!r}", param_hint="--features")
    rows = {}
    for spec in model:
        pipe = _load_pipeline(spec)
        s = RerenderSettings.for_model(spec)
        config = SynthConfig(views=s.views, frames=s.frames, height=s.height, width=s.width, num_tracks=64,
                             baseline=baseline)
        scores, reference = [], []
        for i in range(clips):
            clip = render_clips(config, [clip_seed(seed, i, "test")])
            try:
                tracks, visible, _ = feature_tracks(pipe.transformer.eval(), clip, features, layer, sigma, threshold)
            except ValueError as e:
                raise typer.BadParameter(str(e)) from None
            scores.append(score_feature_tracks(clip, tracks, visible))
            reference.append(score_feature_tracks(clip, *no_motion_tracks(clip)))
        rows[spec] = {k: float(np.mean([x[k] for x in scores])) for k in scores[0]}
        rows["no motion (reference)"] = {k: float(np.mean([x[k] for x in reference])) for k in reference[0]}
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
