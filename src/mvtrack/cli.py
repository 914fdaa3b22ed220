"""The ``mvtrack`` command line."""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from typer.core import TyperGroup

# Errors that describe a bad input, a missing file or a refused operation: the library raises them with a message
# that names the input and what was expected, so the user gets that line and nothing else. Anything else (a
# TypeError, an IndexError) is a bug in mvtrack and keeps its traceback.
USER_ERRORS = (ValueError, OSError, FloatingPointError, MemoryError, ImportError)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


# click's UsageError (bad options, typer.BadParameter), as typer re-exports it (typer vendors click)
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {_one_line(message)}", err=True)


class _Commands(TyperGroup):
    """The one place where the project's errors become ``error: <message>`` on stderr and exit code 2."""

    def invoke(self, ctx: typer.Context):
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning  # library warnings as one line each, without source lines
            try:
                return super().invoke(ctx)
            except _UsageError as e:  # bad options, and typer.BadParameter raised by command bodies
                hint = f" (see {e.ctx.command_path} --help)" if e.ctx is not None else ""
                message = _one_line(e.format_message()) + hint
            except USER_ERRORS as e:
                if isinstance(e, OSError) and getattr(e, "errno", None) == 32:  # broken pipe: the reader left
                    raise
                message = _one_line(str(e)) or type(e).__name__
                if isinstance(e, MemoryError):
                    message = f"out of memory{': ' + message if message != 'MemoryError' else ''}"
        typer.echo(f"error: {message}", err=True)
        sys.stderr.flush()
        raise typer.Exit(2)


app = typer.Typer(
    help="mvtrack: 4D-consistent camera-controlled multi-view video generation supervised by point tracks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Commands,
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


# Ranges of the numbers typed on the command line (docs/reliability.md): seeds are 32-bit, as numpy's; steps and
# frame rates what sampling and video players use.
MAX_SEED = 2**32 - 1
MAX_STEPS = 1000
MAX_FPS = 240


def parse_size(text: str) -> tuple[int, int]:
    """``128`` or ``96x128`` (H x W) to (H, W); raises ``typer.BadParameter`` on anything else."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        raise typer.BadParameter(
            f"expected N or HxW with positive integers, got {text!r}", param_hint="--size"
        ) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise typer.BadParameter(f"expected N or HxW with positive integers, got {text!r}", param_hint="--size")
    return parts[0], parts[1]


@app.command()
def synth(
    out: Path = typer.Option(..., help="Output directory for the tar shards."),
    num: int = typer.Option(16, min=1, help="Number of clips."),
    views: int = typer.Option(4, help="Cameras per clip, in [1, 64]."),
    frames: int = typer.Option(16, help="Frames per clip, in [1, 4096]."),
    size: str = typer.Option("128", help="Frame size: N for N x N, or HxW (1 to 8192 pixels per side)."),
    tracks: int = typer.Option(256, help="Tracks per clip, half on objects and half on the background, in "
                               "[1, 65536]."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Base seed; clip i depends only on (seed, i, split)."),
    split: str = typer.Option("train", help="Seed stream: train, val or test (test is the held-out split)."),
    shards: int = typer.Option(64, min=1, help="Clips per shard."),
    baseline: str = typer.Option("mixed", help="Camera baseline between views: small, wide or mixed."),
    layouts: str = typer.Option("objects", help="Scene layouts drawn per clip, comma-separated: objects (primitives "
                                "under a sky dome), room (RealEstate10K-like rooms walked through)."),
    photo_prob: float = typer.Option(0.0, min=0.0, max=1.0, help="Share of surfaces textured with photographs "
                                     "(scenes/photos.py), in [0, 1]."),
    query_view: int = typer.Option(None, min=0, help="Draw track queries from this view only (0: Track2View's source "
                                   "tracks)."),
    batch: int = typer.Option(0, min=0, max=1024, help="Clips rendered together (0: 1 on CPU, where it is fastest; 64 "
                              "on GPU)."),
    device: str = typer.Option("cpu", help="Render device: cpu, cuda, cuda:N or auto."),
    video_format: str = typer.Option(
        "png", help="How shards store video: png (lossless, ~3x smaller than npy on engine clips), mp4 (H.264, ~35x "
        "smaller, mean error ~1.5/255), jpg, or npy (raw uint8, the format of older shards)."),
    quality: int = typer.Option(None, help="x264 QP for mp4 (default 18), JPEG quality (95), PNG level (3)."),
):
    """Render synthetic multi-view clips with exact tracks, depth and cameras into WebDataset tar shards."""
    from mvtrack.data import ShardWriter
    from mvtrack.devices import resolve_device
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips

    device = str(resolve_device(device))  # cuda without CUDA: one line, before anything is written
    height, width = parse_size(size)
    batch = batch or (1 if device == "cpu" else 64)
    try:
        config = SynthConfig(
            views=views, frames=frames, height=height, width=width, num_tracks=tracks, baseline=baseline,
            layouts=tuple(x.strip() for x in layouts.split(",")), photo_prob=photo_prob, query_view=query_view,
        )
        seeds = [clip_seed(seed, i, split) for i in range(num)]
        writer = ShardWriter(out, clips_per_shard=shards, video_format=video_format, quality=quality)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    start = time.perf_counter()
    with writer, _progress() as progress:
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
    max_clips: int = typer.Option(4, min=1, max=10000, help="Clips to draw."),
    fps: int = typer.Option(8, min=1, max=MAX_FPS),
    scale: int = typer.Option(2, min=1, max=16, help="Integer upscaling of frames before drawing."),
    max_tracks: int = typer.Option(128, min=1, max=65536, help="Tracks to draw per clip."),
):
    """Write an MP4 and a GIF grid of all views with tracks, and a PNG of the camera trajectories, per clip."""
    import warnings

    from mvtrack.data import ReadStats, iter_shard, list_shards
    from mvtrack.outputs import check_output_dir
    from mvtrack.viz import visualize_clip

    check_output_dir(out)
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
    from mvtrack.outputs import check_output_dir
    from mvtrack.training import TrainConfig, Trainer

    cfg = TrainConfig.from_yaml(config, set_)
    check_output_dir(cfg.output_dir, "output_dir")
    trainer = Trainer(cfg, resume=resume)
    try:
        metrics = trainer.train()
    finally:
        trainer.accelerator.end_training()  # join gloo/NCCL threads before exit (else ranks can abort at exit)
    console.print(f"done: {metrics}; weights (EMA) in {Path(cfg.output_dir) / 'final'}")


@app.command()
def export(
    checkpoint: Path = typer.Argument(
        ..., help="A checkpoint directory, or a run's output_dir (its latest checkpoint)."
    ),
    out: Path = typer.Option(..., help="Model directory to write."),
    half: bool = typer.Option(True, help="Store float16 weights (half the size; loaded back as float32; Wan's float32 "
                              "modules stay float32)."),
    lora: str = typer.Option(None, help="A LoRA run: merge (fold the adapters into the weights) or adapter (adapters "
                             "and trained modules only, the base model referred to by path); default: the run's "
                             "lora.export."),
    copy_text_encoder: bool = typer.Option(False, help="Copy the base's text_encoder/ instead of linking to it."),
):
    """Write a checkpoint's EMA weights as a model directory that `generate` and `demo` load (with the base's
    scheduler, tokenizer, text encoder and VAE for a Wan2.1 root)."""
    import torch

    from mvtrack.training import export_checkpoint

    if lora not in (None, "merge", "adapter"):
        raise typer.BadParameter(f"expected merge or adapter, got {lora!r}", param_hint="--lora")
    try:
        path = export_checkpoint(checkpoint, out, torch.float16 if half else torch.float32, lora=lora,
                                 copy_text_encoder=copy_text_encoder)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e)) from None
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20
    console.print(f"wrote {path} ({size:.1f} MiB)")


_DEVICE_HELP = "Where to sample: auto (CUDA when present, else the CPU), cpu, cuda or cuda:N."
_DTYPE_HELP = ("Weights' precision: auto (bfloat16 on CUDA, float32 on the CPU), float32, bfloat16 or float16 (Wan's "
               "float32 modules and the VAE stay float32).")


def _device_dtype(device: str, dtype: str):
    """``(torch.device, torch.dtype)`` of --device / --dtype (a ``ValueError`` naming the option otherwise)."""
    from mvtrack.devices import resolve_device, resolve_dtype

    where = resolve_device(device)
    return where, resolve_dtype(dtype, where)


def _load_pipeline(model: str, device: str = "auto", dtype: str = "auto"):
    from mvtrack.pipelines import MultiViewPipeline

    where, precision = _device_dtype(device, dtype)
    try:
        pipe = MultiViewPipeline.from_model(model, precision, device=where)
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="--model") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


@app.command()
def demo(
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (default: the embedded mvtrack-S)."),
    out: Path = typer.Option(Path("outputs/demo"), help="Output directory."),
    clips: int = typer.Option(4, min=1, max=10000, help="Held-out synthetic clips to re-render."),
    steps: int = typer.Option(25, min=1, max=MAX_STEPS, help="Denoising steps."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Seed of the clip stream."),
    split: str = typer.Option("test", help="Clip stream: test (held out) or val (for choosing checkpoints)."),
    frames: int = typer.Option(None, min=1, max=1024, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    device: str = typer.Option("auto", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", help=_DTYPE_HELP),
):
    """Re-render held-out synthetic clips (view 0 given, view 1 generated) and score them against ground truth."""
    from rich.table import Table

    from mvtrack.outputs import check_output_dir
    from mvtrack.runners import RerenderSettings, rerender_heldout

    check_output_dir(out)
    pipe = _load_pipeline(model, device, dtype)
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
        "source_depth_splat": "source-depth splat (no learning)",
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
    image: Path = typer.Option(
        None, help="A first frame: generate every view from it (image-to-video; EXPERIMENTAL, untrained)."
    ),
    cameras: Path = typer.Option(
        None,
        help="RealEstate10K camera file of the source (default: a static camera). A file whose rotations all have "
        "det = -1 (a mirrored world, as CamI2V's demo poses) is used relative to its first camera, with a warning.",
    ),
    target: list[str] = typer.Option(
        ["orbit:15"],
        help="Target trajectory per generated view: NAME[:AMOUNT] (orbit:30, arc:15, pan:10, tilt:10, dolly:0.5, "
        "static), starting at the source's first camera; or a RealEstate10K file, whose poses are taken relative "
        "to its own first camera and placed at the source's first camera (see --absolute-targets).",
    ),
    depth: Path = typer.Option(
        None, help="Per-frame depth of the source, .npy/.npz (T, H, W) z-depth at the video's size (cropped and "
        "nearest-resized like the frames, never stretched), instead of stereo depth of its frames."
    ),
    tracks3d: Path = typer.Option(
        None, help="3D tracks of the source, .npy/.npz (T, N, 3) world points (NaN where unknown), in the camera "
        "file's world, for a Track2View model (e.g. `mvtrack tracks` output), instead of the stereo depth's dense "
        "tracks.",
    ),
    depth_model: Path = typer.Option(
        None, help="A local depth-estimation model directory (transformers: Depth Anything V2, DPT) whose depth, "
        "aligned to the stereo depth, completes it where stereo finds none. Nothing is downloaded."
    ),
    truth: Path = typer.Option(
        None, help="The true frames of the (single) --target's cameras, if you have them (a held-out part of a static "
        "scene): cropped like the source, shown in contact_sheet.png and scored (PSNR, SSIM)."
    ),
    truth_start: int = typer.Option(0, min=0, help="The first frame of --truth to use (e.g. the source's --frames, when "
                                    "the target file holds the cameras of the frames after the source's)."),
    absolute_targets: bool = typer.Option(
        False,
        "--absolute-targets",
        help="Read --target files as poses in the source camera file's world, as written, instead of relative "
        "to their first camera.",
    ),
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (default: the embedded mvtrack-S)."),
    frames: int = typer.Option(None, min=1, help="Frames per view, at most 1024 (default: the model's training "
                               "length)."),
    size: str = typer.Option(
        None,
        help="Frame size N or HxW, 1 to 4096 pixels per side (default: the model's training size). Sources of another "
        "aspect ratio are centre-cropped to it, then resized (never stretched); their camera intrinsics follow the "
        "crop.",
    ),
    fov: float = typer.Option(
        55.0, help="Horizontal field of view in degrees, in [1, 179], of the generated frames when no camera file "
        "is given."
    ),
    steps: int = typer.Option(25, min=1, max=MAX_STEPS, help="Denoising steps."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Seed of the initial noise."),
    joint: bool = typer.Option(
        False, help="Generate all targets together, mutually consistent, instead of one (source, target) pair each."
    ),
    views_per_group: int = typer.Option(
        None, min=1, max=64, help="With --joint: CVD's collaborative inference, the model sees the source and this "
        "many targets at a time (every combination, predictions averaged per step): memory of one group, time of all. "
        "Default: all targets in one joint attention.",
    ),
    fps: int = typer.Option(8, min=1, max=MAX_FPS),
    prompt: str = typer.Option(None, help="Text prompt, for a model with a text encoder (a fine-tuned Wan2.1; "
                               "default: the caption it was trained with on clips without one)."),
    negative_prompt: str = typer.Option(None, help="What classifier-free guidance steers away from (default: empty)."),
    guidance_scale: float = typer.Option(None, min=0.0, max=50.0, help="Classifier-free guidance scale in [0, 50] "
                                         "(WanPipeline's: uncond + scale * (cond - uncond)); 1 runs unguided. Default: "
                                         "5 with a text encoder, else 1."),
    device: str = typer.Option("auto", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", help=_DTYPE_HELP),
):
    """Generate new views of a video along camera trajectories, or N views from a first frame.

    Sources whose aspect ratio differs from the output size are centre-cropped, never stretched; camera files (the
    source's and the targets') follow the crop. Without --cameras the cameras are estimated by structure from motion.
    """
    import torch

    from mvtrack.data import load_source
    from mvtrack.data.source import check_fov
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners import RerenderSettings, check_generation_size, image_to_video, prepare_source, rerender_video
    from mvtrack.runners.generate import check_target_specs, target_views
    from mvtrack.viz import contact_sheet, tile_views, to_uint8_frames, write_mp4

    if (video is None) == (image is None):
        raise typer.BadParameter("give exactly one of --video (re-render) or --image (image-to-video)")
    if truth is not None and (image is not None or len(target) != 1):
        raise typer.BadParameter("applies to re-rendering a --video along one --target", param_hint="--truth")
    check_fov(fov)
    check_target_specs(target)  # trajectory amounts within their ranges, before the model is loaded
    hw = parse_size(size) if size else None
    check_output_dir(out)
    pipe = _load_pipeline(model, device, dtype)  # first: it checks the model directory's files, which the defaults read
    if pipe.text is None and (prompt is not None or negative_prompt is not None):
        raise typer.BadParameter(f"{model} has no text encoder (a fine-tuned Wan2.1 root has text_encoder/ and "
                                 "tokenizer/); it takes no prompt", param_hint="--prompt")
    if guidance_scale is not None and guidance_scale > 1 and pipe.text is None:
        raise typer.BadParameter(f"classifier-free guidance needs a text encoder; {model} has none (use 1)",
                                 param_hint="--guidance-scale")
    defaults = RerenderSettings.for_model(model)
    num_frames = frames or defaults.frames
    hw = hw or (defaults.height, defaults.width)
    if views_per_group is not None and not joint:
        raise typer.BadParameter("applies to --joint generation only", param_hint="--views-per-group")
    together = min(len(target), views_per_group or len(target)) if joint or image else 1
    check_generation_size(together + 1, num_frames, hw)
    text = dict(prompt=prompt, negative_prompt=negative_prompt, guidance_scale=guidance_scale)
    mirrored = "error" if absolute_targets else "relative"
    with _progress() as progress:
        if image:
            warnings.warn("image-to-video is experimental: the shipped models were not trained for it and produce "
                          "near-uniform frames after the first; see docs/models.md")
            first = load_source(image, hw, cameras=cameras, fov=fov, mirrored=mirrored, indices=[0])
            task = progress.add_task("generating", total=1)
            source_out, generated = image_to_video(pipe, first, target, num_frames, steps, seed, views_per_group, **text)
            progress.advance(task)
        else:
            depth_net = _depth_model(depth_model, device)
            source = load_source(video, hw, num_frames, cameras, depth, fov, mirrored)
            task = progress.add_task("source geometry", total=None)
            inputs = prepare_source(source, pipe.transformer, model, tracks3d, depth_net)
            progress.remove_task(task)
            for line in inputs.notes:
                console.print(line)
            cams = target_views(inputs, target, seed, absolute_targets)
            groups = 1 if joint else len(target)
            task = progress.add_task("generating", total=groups)
            generated = rerender_video(pipe, inputs, cams, steps, seed, joint, views_per_group,
                                       progress=lambda: progress.advance(task), **text)
            source_out = source.frames
    out.mkdir(parents=True, exist_ok=True)
    views = [to_uint8_frames(source_out)] + [to_uint8_frames(g) for g in generated]
    names = ["source"] + [Path(t).name for t in target]
    if truth is not None:
        from mvtrack.evaluation import psnr, ssim

        true = load_source(truth, hw, truth_start + num_frames, indices=list(range(truth_start,
                                                                              truth_start + num_frames))).frames
        scored = generated[0].numpy()
        console.print(f"against {truth}: PSNR {float(psnr(scored, true.numpy()).mean()):.2f} dB, "
                      f"SSIM {float(ssim(scored, true.numpy()).mean()):.3f} (means over frames)")
        views.append(to_uint8_frames(true))
        names.append("truth")
    write_mp4(out / "view_00_source.mp4", views[0], fps)
    for i, frames_i in enumerate(views[1:len(generated) + 1], 1):
        write_mp4(out / f"view_{i:02d}.mp4", frames_i, fps)
    write_mp4(out / "grid.mp4", tile_views(views, columns=len(views)), fps)
    T = min(len(v) for v in views)
    contact_sheet(out / "contact_sheet.png", [[v[t] for v in views] for t in sorted({0, T // 2, T - 1})], names)
    console.print(f"wrote {len(generated) + 1} views, grid.mp4 and contact_sheet.png ({' | '.join(names)}) to {out}")


def _depth_model(path: Path | None, device: str = "auto"):
    """A ``LearnedDepth`` from ``--depth-model``, or None."""
    if path is None:
        return None
    from mvtrack.data.learned_depth import LearnedDepth

    where, _ = _device_dtype(device, "auto")
    return LearnedDepth(path, where)


@app.command()
def tracks(
    video: Path = typer.Option(..., help="Source video (MP4, GIF or a folder of frames)."),
    out: Path = typer.Option(..., help="Output .npz; overlay and depth PNGs are written beside it (NAME.png, "
                             "NAME_depth.png)."),
    cameras: Path = typer.Option(None, help="RealEstate10K camera file of the source, one line per frame (default: "
                                 "cameras estimated by structure from motion)."),
    depth: Path = typer.Option(None, help="Per-frame depth of the source, .npy/.npz (T, H, W), instead of stereo."),
    depth_model: Path = typer.Option(None, help="A local depth-estimation model directory (transformers) completing "
                                     "the stereo depth."),
    frames: int = typer.Option(None, min=2, max=1024, help="Frames to use (default: as many as the camera file has, "
                               "else the video)."),
    size: str = typer.Option(None, help="Frame size N or HxW the tracks are made for (default: the embedded model's); "
                             "the video is centre-cropped to its aspect ratio."),
    fov: float = typer.Option(55.0, help="Horizontal field of view in degrees, in [1, 179], the first guess of "
                              "structure from motion when there is no camera file."),
):
    """The source's dense 3D tracks for paired-track conditioning (Track2View): every static pixel whose stereo depth
    its neighbour frames confirm (or every pixel of a --depth file), in the camera file's world, as an .npz that
    `generate --tracks3d` reads, with an overlay PNG of the tracks and a PNG of the depth."""
    import imageio.v3 as iio
    import numpy as np

    from mvtrack.data import load_source
    from mvtrack.data.source import check_fov
    from mvtrack.outputs import check_output_file
    from mvtrack.runners import RerenderSettings, prepare_source
    from mvtrack.viz import depth_image, draw_tracks, tile_views, to_uint8_frames, upscale_frames

    if out.suffix.lower() != ".npz":
        raise typer.BadParameter(f"expected a path ending in .npz, got {out}", param_hint="--out")
    check_output_file(out)
    check_fov(fov)
    defaults = RerenderSettings.for_model(DEFAULT_MODEL)
    hw = parse_size(size) if size else (defaults.height, defaults.width)
    source = load_source(video, hw, frames, cameras, depth, fov)
    with _progress() as progress:
        progress.add_task("source geometry", total=None)
        inputs = prepare_source(source, depth_model=_depth_model(depth_model), scale_scene=False, min_tracks=1)
    for line in inputs.notes:
        console.print(line)
    if inputs.tracks is None:
        raise ValueError(f"{video}: no 3D tracks could be made ({'; '.join(inputs.notes)})")
    result, geometry = inputs.tracks, inputs.geometry
    result.save(out)
    T = source.num_frames
    shown = np.unique(np.linspace(0, T - 1, 4).round().astype(int))
    scale = max(1, 256 // max(hw))
    # Overlay: about 600 tracks on 4 frames, coloured by the frame they were lifted from
    step = max(1, result.tracks.shape[1] // 600)
    N = result.tracks[:, ::step].shape[1]
    colors = (np.tile([[40, 220, 40]], (N, 1)) if result.origin is None else _origin_colors(result.origin[::step], T))
    drawn = draw_tracks(to_uint8_frames(source.frames), result.tracks[:, ::step], result.visible[:, ::step],
                        colors.astype(np.uint8), scale=scale)
    iio.imwrite(out.with_suffix(".png"), tile_views([drawn[t][None] for t in shown], columns=len(shown))[0])
    pictures = depth_image(geometry.depth, geometry.supported, geometry.moving)
    h = max(pictures.shape[1], hw[0] * scale)
    rows = [upscale_frames(to_uint8_frames(source.frames)[shown], scale),
            upscale_frames(pictures[shown], max(1, h // pictures.shape[1]))]
    iio.imwrite(out.with_name(out.stem + "_depth.png"),
                np.concatenate([tile_views([r[k][None] for k in range(len(shown))], columns=len(shown))[0]
                                for r in rows], 0))
    s = result.summary()
    console.print(f"{s['tracks']} tracks over {T} frames ({s['mode']})")
    console.print(f"wrote {out}, {out.with_suffix('.png')} and {out.with_name(out.stem + '_depth.png')}")


def _origin_colors(origin, frames: int):
    """A colour per track from its origin frame (matplotlib's viridis: early frames dark, late ones yellow)."""
    import matplotlib

    return (matplotlib.colormaps["viridis"](origin.numpy() / max(frames - 1, 1))[:, :3] * 255).round()


def _eval_settings(matcher: str, cameras: bool, tracks: bool, mode: str = "rerender"):
    from mvtrack.evaluation.matching import MATCHERS
    from mvtrack.runners.evaluate import MODES, EvalSettings

    if matcher not in MATCHERS:
        raise typer.BadParameter(f"expected one of {MATCHERS}, got {matcher!r}", param_hint="--matcher")
    if mode not in MODES:
        raise typer.BadParameter(f"expected one of {MODES}, got {mode!r}", param_hint="--mode")
    return EvalSettings(matcher=matcher, cameras=cameras, tracks=tracks, mode=mode)


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
    mode: str = typer.Option("rerender", help="rerender (view 0 is the source) or joint (every view generated, "
                             "PRED/<clip>/view_0.mp4 too; pairs of generated views scored)."),
):
    """Score any system's generated videos against the requested cameras and the ground truth."""
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.evaluate import evaluate_dirs
    from mvtrack.runners.report import write_report

    settings = _eval_settings(matcher, cameras, tracks, mode)
    out = check_output_dir(out or pred.parent / f"eval_{pred.name}")
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
    steps: int = typer.Option(25, min=1, max=MAX_STEPS, help="Denoising steps for checkpoints."),
    seed: list[int] = typer.Option([0], min=0, max=MAX_SEED, help="Sampling seed(s) of --checkpoint: clip i draws its "
                                   "noise from seed + i."),
    sensitivity: bool = typer.Option(False, help="Also measure camera sensitivity of --checkpoint (3x sampling)."),
    matcher: str = typer.Option("auto", help="Matcher for Mat.Pix and the pose AUC: xfeat, sift or auto."),
    cameras: bool = typer.Option(True, help="Estimate camera trajectories with COLMAP."),
    tracks: bool = typer.Option(True, help="Recover tracks by optical flow and score them."),
    device: str = typer.Option("auto", help=_DEVICE_HELP),
    dtype: str = typer.Option("auto", help=_DTYPE_HELP),
):
    """Run methods (a results config's `methods:`, plus --method / --checkpoint) on a held-out synthetic split, score
    them (mvtrack eval) and write the results table OUT/summary.md."""
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.bench import REFERENCE_METHODS, BenchRun, MethodSpec, run_bench
    from mvtrack.runners.real_bench import REAL_REFERENCE_METHODS

    where, precision = _device_dtype(device, dtype)
    check_output_dir(out)
    known = tuple(dict.fromkeys(REFERENCE_METHODS + REAL_REFERENCE_METHODS))
    for m in method:
        if m not in known:
            raise typer.BadParameter(f"expected one of {known}, got {m!r}", param_hint="--method")
    try:
        run = BenchRun.from_yaml(config)
        # a run is named after its directory (or the run directory above an exported ``final/``)
        names = [Path(c).parent.name if Path(c).name == "final" else (Path(c).name or c) for c in checkpoint]
        for m in method:
            if m not in run.split.reference_methods:
                raise typer.BadParameter(f"expected one of {run.split.reference_methods}, got {m!r}",
                                         param_hint="--method")
        run.methods += [MethodSpec(m) for m in method] + [
            MethodSpec(n, model=c, seeds=list(seed), steps=steps, sensitivity=sensitivity)
            for n, c in zip(names, checkpoint)]
    except (FileNotFoundError, ValueError, TypeError) as e:
        raise typer.BadParameter(str(e), param_hint="--config") from None
    if not run.methods:
        raise typer.BadParameter("give at least one --checkpoint or --method, or a config with methods:")
    listed = [m.name for m in run.methods]
    if len(set(listed)) < len(listed):
        raise typer.BadParameter(f"methods must have distinct names, got {listed}", param_hint="--checkpoint")
    settings = _eval_settings(matcher, cameras, tracks)
    cfg = run.split
    with _progress() as progress:
        def task(description, total):
            t = progress.add_task(description, total=total)
            return lambda *_: progress.advance(t)
        try:
            rows = run_bench(run, out, settings, progress=task, device=where, dtype=precision)
        except (FileNotFoundError, ValueError) as e:
            raise typer.BadParameter(str(e)) from None
    for row in rows.values():
        _report_skipped(row.get("skipped", []))
    _print_summary(rows, cfg.describe())
    console.print(f"wrote {out}/<method>/results.json and report.html, and {out}/summary.md")


@app.command(name="analyze-layers")
def analyze_layers(
    model: str = typer.Option(DEFAULT_MODEL, help="Model directory or preset (pixel space)."),
    out: Path = typer.Option(Path("outputs/layers"), help="Where layers.json and layers.png go."),
    clips: int = typer.Option(8, min=1, max=10000, help="Ground-truth clips (the val stream: not the held-out test "
                              "split)."),
    baseline: str = typer.Option("mixed", help="Camera baseline of the clips: small, wide or mixed."),
    sigma: float = typer.Option(0.5, min=0.0, max=1.0, help="Noise level of every frame (flow matching sigma)."),
    pairs: int = typer.Option(256, min=1, max=65536, help="Sampled correspondences per clip."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED),
    frames: int = typer.Option(None, min=1, max=1024, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    views: int = typer.Option(None, min=1, max=64, help="Views (default: the model's training count)."),
    per_head: bool = typer.Option(False, "--per-head", help="Also score each attention head alone (heads.png)."),
):
    """Score every self-attention layer of a model as a tracker (attention argmax vs ground-truth tracks)."""
    from rich.table import Table

    from mvtrack.runners import RerenderSettings
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    from mvtrack.tracking.analysis import (
        MEAN_HEADS,
        NO_MOTION,
        as_dicts,
        attention_scores,
        merge_scores,
        plot_head_scores,
        plot_scores,
        rank_heads,
    )
    from mvtrack.outputs import check_output_dir

    check_output_dir(out)
    pipe = _load_pipeline(model, "cpu", "float32")  # its clips and scores are on the CPU
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
            batches.append(attention_scores(net, clip, sigma=sigma, num_pairs=pairs, seed=seed + i,
                                            per_head=per_head))
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
    by = {(r.layer, r.kind): r for r in scores if r.head == MEAN_HEADS}
    for layer in sorted({r.layer for r in scores}):
        a = by[(layer, "all")]
        table.add_row("no motion" if layer == NO_MOTION else str(layer), str(a.pairs), f"{a.pck1:.3f}",
                      f"{a.pck2:.3f}", f"{a.pck4:.3f}", *(f"{by[(layer, k)].pck2:.3f}" for k in
                      ("temporal", "cross_view", "cross_view_time")), "—" if layer == NO_MOTION else f"{a.cycle:.3f}")
    console.print(table)
    if per_head:
        plot_head_scores(scores, out / "heads.png", f"{Path(model).name}: each head's argmax as a tracker")
        ranked = rank_heads(scores)
        table = Table(title=f"attention heads as trackers, best first (all pairs; no motion PCK@2 "
                            f"{by[(NO_MOTION, 'all')].pck2:.3f}; head-averaged rows in the table above)")
        for col in ("rank", "layer", "head", "PCK@1", "PCK@2", "PCK@4", "PCK@2 cross-view", "cycle"):
            table.add_column(col, justify="right")
        heads = {(r.layer, r.head, r.kind): r for r in scores}
        for i, r in enumerate(ranked, 1):
            table.add_row(str(i), str(r.layer), str(r.head), f"{r.pck1:.3f}", f"{r.pck2:.3f}", f"{r.pck4:.3f}",
                          f"{heads[(r.layer, r.head, 'cross_view')].pck2:.3f}", f"{r.cycle:.3f}")
        console.print(table)
    console.print(f"wrote {out / 'layers.json'}, {out / 'layers.png'}" + (" and heads.png" if per_head else ""))


@app.command(name="track-features")
def track_features(
    model: list[str] = typer.Option([DEFAULT_MODEL], help="Model directories or presets (repeatable)."),
    clips: int = typer.Option(8, min=1, max=10000, help="Held-out clips (the test stream)."),
    features: str = typer.Option("qk", help="qk (a layer's queries against keys) or refined (Track4Gen refiner)."),
    layer: int = typer.Option(None, min=0, help="Layer for qk (default: the middle block)."),
    sigma: float = typer.Option(0.3, min=0.0, max=1.0, help="Noise level of every frame."),
    threshold: float = typer.Option(0.5, min=-1.0, max=1.0, help="Cosine below which a point is predicted occluded."),
    baseline: str = typer.Option("mixed", help="Camera baseline of the clips: small, wide or mixed."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED),
    out: Path = typer.Option(None, help="Optional JSON file for the scores."),
):
    """Zero-shot tracking with a model's features (Track4Gen 4.3.1), scored with TAP-Vid beside no motion."""
    import numpy as np
    from rich.table import Table

    from mvtrack.outputs import check_output_file
    from mvtrack.runners import RerenderSettings
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    from mvtrack.tracking.zero_shot import FEATURES, feature_tracks, no_motion_tracks, score_feature_tracks

    if features not in FEATURES:
        raise typer.BadParameter(f"expected one of {FEATURES}, got {features!r}", param_hint="--features")
    if out is not None:
        check_output_file(out)
    rows = {}
    for spec in model:
        pipe = _load_pipeline(spec, "cpu", "float32")
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


# commands that prepare training data (encode, prepare-tracks), kept in their own module
from mvtrack.cli_prepare import register as _register_prepare  # noqa: E402

_register_prepare(app, console, _progress)
