"""Generation commands: ``demo`` (a preset of ``bench``), ``generate`` (new views of a video) and ``tracks`` (the 3D
tracks of a video, Track2View's input)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer

from mvtrack.defaults import FOV_DEGREES, SAMPLING_STEPS, SOURCE_TREE_MODEL
from mvtrack.scenes.config import HELD_OUT

from ._app import (
    DEVICE,
    DTYPE,
    MAX_FPS,
    MAX_SEED,
    MAX_STEPS,
    MODEL,
    app,
    console,
    device_dtype,
    load_pipeline,
    parse_size,
    print_summary,
    progress_bar,
    tasks,
)

# the source's files and camera guess, as `generate` and `tracks` read them (``data.load_source``)
SOURCE_CAMERAS = typer.Option(
    None, help="RealEstate10K camera file of the source, one line per frame (default: cameras estimated by structure "
    "from motion, else a static camera). A file whose rotations all have det = -1 (a mirrored world, as CamI2V's demo "
    "poses) is used relative to its first camera, with a warning.")
SOURCE_DEPTH = typer.Option(
    None, help="Per-frame depth of the source, .npy/.npz (T, H, W) z-depth at the video's size (cropped and "
    "nearest-resized like the frames, never stretched), instead of stereo depth of its frames.")
DEPTH_MODEL = typer.Option(
    None, help="A local depth-estimation model directory (transformers: Depth Anything V2, DPT) whose depth, aligned "
    "to the stereo depth, completes it where stereo finds none. Nothing is downloaded.")
SOURCE_FOV = typer.Option(
    FOV_DEGREES, help="Horizontal field of view in degrees, in [1, 179], of a source without a camera file: structure "
    "from motion's first guess, and the cameras' when it finds none.")

@app.command()
def demo(
    model: str = MODEL,
    out: Path = typer.Option(Path("outputs/demo"), help="Output directory."),
    clips: int = typer.Option(4, min=1, max=10000, help="Held-out synthetic clips to re-render."),
    steps: int = typer.Option(SAMPLING_STEPS, min=1, max=MAX_STEPS, help="Denoising steps."),
    seed: int = typer.Option(0, min=0, max=MAX_SEED, help="Seed of the clip stream."),
    split: Literal[HELD_OUT] = typer.Option("test", help="Clip stream: test (held out) or val (for choosing "
                                            "checkpoints)."),
    frames: int = typer.Option(None, min=1, max=1024, help="Frames per view (default: the model's training length)."),
    size: str = typer.Option(None, help="Frame size N or HxW (default: the model's training size)."),
    device: str = DEVICE,
    dtype: str = DTYPE,
):
    """Re-render held-out synthetic clips (view 0 given, view 1 generated) beside the reference rows, scored as
    `bench` scores (the decoded videos; PSNR, SSIM, warp PSNR, flicker): a preset of `bench`."""
    from mvtrack.defaults import default_model
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.demo import demo_run, run_demo

    where, precision = device_dtype(device, dtype)
    check_output_dir(out)
    height, width = parse_size(size) if size else (None, None)
    model = model or default_model()
    run = demo_run(model, clips, steps, seed, split, frames, height, width)
    start = time.perf_counter()
    with progress_bar() as progress:
        rows = run_demo(run, out, tasks(progress), where, precision)
    print_summary(rows, f"re-rendering: {run.split.describe()}")
    console.print(f"wrote {out}/summary.md, contact_sheet.png (source | each row | truth) and <row>/report.html in "
                  f"{time.perf_counter() - start:.1f} s")


@app.command()
def generate(
    out: Path = typer.Option(..., help="Output directory."),
    video: Path = typer.Option(
        None, help="Source video (MP4, GIF or a folder of frames): re-render it along --target."
    ),
    image: Path = typer.Option(
        None, help="A first frame: generate every view from it (image-to-video; EXPERIMENTAL, untrained)."
    ),
    cameras: Path = SOURCE_CAMERAS,
    target: list[str] = typer.Option(
        ["orbit:15"],
        help="Target trajectory per generated view: NAME[:AMOUNT] (orbit:30, arc:15, pan:10, tilt:10, dolly:0.5, "
        "static), starting at the source's first camera; or a RealEstate10K file, whose poses are taken relative "
        "to its own first camera and placed at the source's first camera (see --absolute-targets).",
    ),
    depth: Path = SOURCE_DEPTH,
    tracks3d: Path = typer.Option(
        None, help="3D tracks of the source, .npy/.npz (T, N, 3) world points (NaN where unknown), in the camera "
        "file's world, for a Track2View model (e.g. `mvtrack tracks` output), instead of the stereo depth's dense "
        "tracks.",
    ),
    depth_model: Path = DEPTH_MODEL,
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
    model: str = MODEL,
    frames: int = typer.Option(None, min=1, help="Frames per view, at most 1024 (default: the model's training "
                               "length)."),
    size: str = typer.Option(
        None,
        help="Frame size N or HxW, 1 to 4096 pixels per side (default: the model's training size). Sources of another "
        "aspect ratio are centre-cropped to it, then resized (never stretched); their camera intrinsics follow the "
        "crop.",
    ),
    fov: float = SOURCE_FOV,
    steps: int = typer.Option(SAMPLING_STEPS, min=1, max=MAX_STEPS, help="Denoising steps."),
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
    device: str = DEVICE,
    dtype: str = DTYPE,
):
    """Generate new views of a video along camera trajectories, or N views from a first frame.

    Sources whose aspect ratio differs from the output size are centre-cropped, never stretched; camera files (the
    source's and the targets') follow the crop. Without --cameras the cameras are estimated by structure from motion.
    """
    from mvtrack.data.source import check_fov
    from mvtrack.defaults import default_model
    from mvtrack.outputs import check_output_dir
    from mvtrack.runners.generate import check_target_specs, generate_views

    if (video is None) == (image is None):
        raise typer.BadParameter("give exactly one of --video (re-render) or --image (image-to-video)")
    if truth is not None and (image is not None or len(target) != 1):
        raise typer.BadParameter("applies to re-rendering a --video along one --target", param_hint="--truth")
    check_fov(fov)
    check_target_specs(target)  # trajectory amounts within their ranges, before the model is loaded
    if views_per_group is not None and not joint:
        raise typer.BadParameter("applies to --joint generation only", param_hint="--views-per-group")
    hw = parse_size(size) if size else None
    check_output_dir(out)
    model = model or default_model()
    pipe = load_pipeline(model, device, dtype)  # first: it checks the model directory's files, which the defaults read
    with progress_bar() as progress:
        result = generate_views(
            pipe, model, video=video, image=image, targets=target, cameras=cameras, depth=depth, tracks3d=tracks3d,
            depth_model=depth_model, absolute_targets=absolute_targets, truth=truth, truth_start=truth_start,
            frames=frames, size=hw, fov=fov, steps=steps,
            seed=seed, joint=joint, views_per_group=views_per_group, prompt=prompt, negative_prompt=negative_prompt,
            guidance_scale=guidance_scale, progress=tasks(progress))
    for line in result.notes:
        console.print(line)
    if result.scores is not None:
        console.print(f"against {truth}: PSNR {result.scores['psnr']:.2f} dB, SSIM {result.scores['ssim']:.3f} "
                      "(means over frames)")
    result.save(out, fps)
    console.print(f"wrote {1 + len(result.views)} views, grid.mp4 and contact_sheet.png ({' | '.join(result.names)}) "
                  f"to {out}")


@app.command()
def tracks(
    video: Path = typer.Option(..., help="Source video (MP4, GIF or a folder of frames)."),
    out: Path = typer.Option(..., help="Output .npz; overlay and depth PNGs are written beside it (NAME.png, "
                             "NAME_depth.png)."),
    cameras: Path = SOURCE_CAMERAS,
    depth: Path = SOURCE_DEPTH,
    depth_model: Path = DEPTH_MODEL,
    frames: int = typer.Option(None, min=2, max=1024, help="Frames to use (default: as many as the camera file has, "
                               "else the video)."),
    size: str = typer.Option(None, help="Frame size N or HxW the tracks are made for (default: the embedded model's); "
                             "the video is centre-cropped to its aspect ratio."),
    fov: float = SOURCE_FOV,
):
    """The source's dense 3D tracks for paired-track conditioning (Track2View): every static pixel whose stereo depth
    its neighbour frames confirm (or every pixel of a --depth file), in the camera file's world, as an .npz that
    `generate --tracks3d` reads, with an overlay PNG of the tracks and a PNG of the depth."""
    from mvtrack.data.source import check_fov
    from mvtrack.outputs import check_output_file
    from mvtrack.runners.rerender import trained_data
    from mvtrack.runners.source_tracks import source_tracks

    if out.suffix.lower() != ".npz":
        raise typer.BadParameter(f"expected a path ending in .npz, got {out}", param_hint="--out")
    check_output_file(out)
    check_fov(fov)
    trained = trained_data(SOURCE_TREE_MODEL)  # its size when the source tree has it, else DataConfig's
    hw = parse_size(size) if size else (trained.height, trained.width)
    depth_net = None
    if depth_model is not None:
        from mvtrack.data.learned_depth import LearnedDepth

        depth_net = LearnedDepth(depth_model, device_dtype("auto", "auto")[0])
    with progress_bar() as progress:
        progress.add_task("source geometry", total=None)
        result = source_tracks(video, hw, frames, cameras, depth, depth_net, fov)
    for line in result.notes:
        console.print(line)
    written = result.save(out)
    s = result.tracks.summary()
    console.print(f"{s['tracks']} tracks over {result.source.num_frames} frames ({s['mode']})")
    console.print(f"wrote {written[0]}, {written[1]} and {written[2]}")
