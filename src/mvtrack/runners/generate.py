"""Re-render a user's video along new cameras: the library behind ``mvtrack generate`` (``generate_views``; the
real-footage benchmark's model rows use its parts), so a Python user gets the same thing in a few lines::

    import mvtrack

    result = mvtrack.rerender("clip.mp4", ["orbit:15", "dolly:0.5"], cameras="clip.txt")
    result.views      # one (T, 3, H, W) video in [0, 1] per target
    result.save("outputs/gen")   # view_00_source.mp4, view_01.mp4, ..., grid.mp4, contact_sheet.png

or step by step::

    from mvtrack.data import load_source
    from mvtrack.pipelines import MultiViewPipeline
    from mvtrack.runners.generate import prepare_source, rerender_video

    pipe = MultiViewPipeline.from_model("weights/mvtrack-S")
    source = load_source("clip.mp4", (64, 64), 8, cameras="clip.txt")
    inputs = prepare_source(source, pipe.transformer)          # geometry, scene scale, dense tracks
    videos = rerender_video(pipe, inputs, ["orbit:15", "dolly:0.5"])   # one (T, 3, H, W) video per target

What happens to a source, in order: cameras from its file, or estimated by structure from motion when there is
none (else a static default camera, and the model runs camera-only); dense depth of its own frames by multi-view
stereo (or a depth file; optionally completed by a learned depth model); the scene scaled so that its median depth
is the one the model was trained at; every confirmed static pixel a 3D track for a Track2View model.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mvtrack.defaults import FOV_DEGREES, SAMPLING_STEPS
from mvtrack.data import PairedTracks, RealTracks, load_tracks3d
from mvtrack.data.real_tracks import MODES, points_tracks
from mvtrack.data.source import Source, camera_file, crop_inverse, load_source, target_cameras
from mvtrack.data.source_geometry import (
    SCENE_DEPTH,
    SourceGeometry,
    dense_tracks,
    estimate_geometry,
    scale_cameras,
    scene_scale,
    source_splat,
)
from mvtrack.models.pretrained import read_model_meta

MAX_SIDE = 4096  # pixels per side of a generated frame
MAX_FRAMES = 1024
# Rough working memory of sampling per generated pixel (video, rays, latents, activations; float32), used to
# refuse sizes that cannot fit before anything is allocated.
BYTES_PER_PIXEL = 256


def machine_memory() -> int:
    """Physical memory of this machine in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_generation_size(views: int, frames: int, size: tuple[int, int], memory: int | None = None) -> None:
    """Refuse a generation whose frames or working memory cannot fit, before anything is read or allocated.

    Raises ``ValueError`` naming ``--frames`` / ``--size`` and the reason (a hard limit, or the estimated
    memory against the machine's).
    """
    H, W = size
    if not 1 <= frames <= MAX_FRAMES:
        raise ValueError(f"--frames {frames}: expected 1 to {MAX_FRAMES} frames per view")
    if not (1 <= H <= MAX_SIDE and 1 <= W <= MAX_SIDE):
        raise ValueError(f"--size {H}x{W}: expected 1 to {MAX_SIDE} pixels per side")
    memory = machine_memory() if memory is None else memory
    need = views * frames * H * W * BYTES_PER_PIXEL
    if memory and need > memory // 2:
        raise ValueError(
            f"--size {H}x{W} with {frames} frames and {views} views: sampling needs about {need / 2**30:.0f} GiB of "
            f"working memory, more than half of this machine's {memory / 2**30:.0f} GiB; pass a smaller --size or "
            "fewer --frames"
        )


def model_scene_depth(model_dir: str | Path | None) -> float:
    """The median source depth a model was trained at (``mvtrack.json`` ``scene.median_depth``), else the engine's
    (``SCENE_DEPTH``): real scenes are scaled to it."""
    scene = read_model_meta(model_dir).get("scene", {})
    if isinstance(scene, dict) and isinstance(scene.get("median_depth"), (int, float)) and scene["median_depth"] > 0:
        return float(scene["median_depth"])
    return SCENE_DEPTH


def estimate_source_cameras(source: Source, seed: int = 0) -> Source:
    """The source with cameras estimated by structure from motion (pycolmap, focal lengths refined from the source's
    default field of view) when it came without a camera file; unchanged, with ``note`` saying why, when the
    reconstruction fails (a static or rotating camera, too little texture)."""
    from mvtrack.geometry.sfm import estimate_trajectory

    if source.cameras != "default":
        return source
    window_crop = source.crop.resized(source.window.shape[1:3])
    K_window = window_crop.intrinsics(source.K_full[0])  # the default guess, in the window's pixels
    est = estimate_trajectory(source.window, K_window.double().numpy(), refine_focal=True, seed=seed)
    if not est.ok:
        return source.with_cameras(source.w2c, source.K_full, "default",
                                   f"no camera file, and structure from motion found no cameras ({est.failure}): a "
                                   "static default camera, no depth")
    w2c = torch.linalg.inv(torch.from_numpy(est.c2w)).float()
    K_full = crop_inverse(torch.from_numpy(est.info["K"]).float().expand(source.num_frames, 3, 3), window_crop)
    return source.with_cameras(w2c, K_full, "estimated",
                               f"cameras estimated by structure from motion ({est.registered} frames, {est.points} "
                               f"points, {est.reprojection_px:.2f} px)")


@dataclass
class SourceInputs:
    """A source prepared for a model: ``source`` with its cameras scaled by ``scale`` into the model's scene units,
    its ``geometry`` (depth in those units) and the 3D ``tracks`` a Track2View model is given (None for other
    models, or when no depth could be found); ``notes``: what was done, for the user."""

    source: Source
    scale: float
    geometry: SourceGeometry | None
    tracks: RealTracks | None
    notes: list

    def paired(self, w2c: torch.Tensor, K: torch.Tensor) -> PairedTracks | None:
        """The tracks paired with the cameras ``w2c (1, V, T, 4, 4)``, ``K (1, V, T, 3, 3)`` (view 0 the source, in
        the scaled scene), or None."""
        return None if self.tracks is None else self.tracks.paired(w2c, K, self.source.size)

    def splat(self, w2c: torch.Tensor, K: torch.Tensor) -> torch.Tensor | None:
        """(1, V, T, 4, H, W): the source carried along its dense stereo tracks into the cameras ``w2c (1, V, T, 4,
        4)``, ``K (1, V, T, 3, 3)`` from the video at the geometry's resolution (``source_splat``; view 0, the
        source, zero), for a pixel model's pixel path; None without dense stereo tracks."""
        if self.tracks is None or self.geometry is None or self.tracks.mode != MODES[3]:
            return None
        size = tuple(self.geometry.depth.shape[-2:])
        targets = source_splat(self.source, self.tracks, w2c[0, 1:], K[0, 1:], size)  # (V - 1, T, 4, H, W)
        return torch.cat([torch.zeros_like(targets[:1]), targets])[None]


def prepare_source(
    source: Source,
    model=None,
    model_dir: str | Path | None = None,
    tracks3d: str | Path | None = None,
    depth_model=None,
    estimate_cameras: bool = True,
    min_tracks: int = 16,
    scale_scene: bool = True,
) -> SourceInputs:
    """Everything a source needs before sampling: cameras, geometry, scene scale, tracks (see the module docstring).

    Args:
        source: from ``load_source``.
        model: the pipeline's transformer (tracks only for a model with a Track2View conditioner), or None.
        model_dir: where the model came from (its ``mvtrack.json`` gives the scene depth it was trained at).
        tracks3d: a file of the source's 3D tracks (``load_tracks3d``) in its camera file's world, instead of stereo.
        depth_model: a ``LearnedDepth`` completing the stereo depth, or None.
        estimate_cameras: run structure from motion when the source has no camera file.
        min_tracks: fewer usable tracks than this and the model runs camera-only.
        scale_scene: scale the scene to the model's depth (False: keep the camera file's units, as ``mvtrack tracks``
            writes them).

    Returns:
        ``SourceInputs``.
    """
    notes = []
    if estimate_cameras and source.cameras == "default":
        source = estimate_source_cameras(source)
    if source.note:
        notes.append(source.note)
    wants_tracks = model is None or getattr(model, "conditioner", None) is not None
    geometry = None
    if source.cameras != "default" or source.depth is not None:
        geometry = estimate_geometry(source, depth_model=depth_model)
        notes.append(geometry.note)
    scale = 1.0
    if scale_scene and geometry is not None and geometry.valid.any():
        scale = scene_scale(geometry, model_scene_depth(model_dir))
        notes.append(f"scene scaled by {scale:.3g} (median depth {geometry.median_depth():.3g} -> "
                     f"{model_scene_depth(model_dir):.3g}, the model's)")
        geometry = geometry.scaled(scale)
    scaled = source.with_cameras(scale_cameras(source.w2c, scale), source.K_full, source.cameras, source.note)
    tracks = None
    if wants_tracks:
        if tracks3d is not None:
            points, known = load_tracks3d(tracks3d, source.num_frames)
            tracks = points_tracks(points * scale, known, scaled.w2c, scaled.K, source.size)
        elif geometry is not None and geometry.mode != "none":
            tracks = dense_tracks(scaled, geometry)
        usable = 0 if tracks is None else int(tracks.known.any(1).sum())
        if usable < min_tracks:
            notes.append(f"only {usable} source tracks could be placed in 3D: running without tracks (camera-only)")
            tracks = None
        else:
            notes.append(f"Track2View tracks: {usable} source points in 3D ({tracks.mode})")
    return SourceInputs(scaled, scale, geometry, tracks, notes)


def check_target_specs(specs: list[str]) -> None:
    """Every target that is not a camera file is a trajectory spec within its range (``parse_spec``), checked before
    anything is loaded; ``ValueError`` naming ``--target`` and the spec otherwise. Files are read later."""
    from mvtrack.geometry.trajectories import parse_spec

    for spec in specs:
        path, at, _ = spec.rpartition("@")
        if Path(spec).is_file() or (at and Path(path).is_file()) or "/" in spec or spec.endswith(".txt"):
            continue
        try:
            parse_spec(spec)
        except ValueError as e:
            raise ValueError(f"--target {spec}: {e}") from None


def target_views(inputs: SourceInputs, specs: list[str], seed: int = 0, absolute: bool = False):
    """``(w2c (T, 4, 4), K (T, 3, 3))`` of each target spec (``data.source.target_cameras``) in the scaled scene:
    files follow the source's crop and scale; orbits and arcs turn about the scene's median depth.

    A bad spec, or cameras that end up non-finite, are a ``ValueError`` naming ``--target`` and the spec."""
    out = []
    depth = inputs.geometry.median_depth() if inputs.geometry is not None and inputs.geometry.valid.any() else None
    for i, spec in enumerate(specs):
        generator = torch.Generator().manual_seed(seed + i)
        is_file = camera_file(spec) is not None
        try:
            w2c, K = target_cameras(spec, inputs.source, generator, absolute, center_depth=depth)
        except ValueError as e:
            if is_file:  # read_re10k's errors name the file and line
                raise
            raise ValueError(f"--target {spec}: {e}") from None
        if is_file and absolute:  # poses written in the file's (unscaled) world
            w2c = scale_cameras(w2c, inputs.scale)
        elif is_file:  # relative motion of a file: its translations in its own units, scaled like the source's
            rel = w2c @ torch.linalg.inv(inputs.source.w2c[:1])
            w2c = scale_cameras(rel, inputs.scale) @ inputs.source.w2c[:1]
        if not (torch.isfinite(w2c).all() and torch.isfinite(K).all()):
            raise ValueError(f"--target {spec}: its cameras are not finite in the source's scene (scaled by "
                             f"{inputs.scale:.3g}); expected poses and intrinsics of a camera file's documented ranges")
        out.append((w2c, K))
    return out


def rerender_video(
    pipe,
    inputs: SourceInputs,
    targets: list,
    steps: int = SAMPLING_STEPS,
    seed: int = 0,
    joint: bool = False,
    views_per_group: int | None = None,
    progress=None,
    **prompt,
) -> list[torch.Tensor]:
    """Generate one video per target view of a prepared source.

    Args:
        pipe: a ``MultiViewPipeline``.
        inputs: ``prepare_source``'s result.
        targets: target specs (``target_views``) or ``(w2c, K)`` pairs already in the scaled scene.
        joint: all targets in one generation (mutually consistent; ``views_per_group`` for CVD's collaborative
            groups), else one (source, target) pair at a time.
        progress: called with no argument after each generation.
        prompt: ``prompt``, ``negative_prompt``, ``guidance_scale`` for a model with a text encoder.

    Returns:
        videos: one (T, 3, H, W) tensor in [0, 1] per target, on the CPU.
    """
    src = inputs.source
    cams = target_views(inputs, targets) if targets and isinstance(targets[0], str) else list(targets)
    groups = [list(range(len(cams)))] if joint else [[i] for i in range(len(cams))]
    generated = [None] * len(cams)
    for group in groups:
        w2c = torch.stack([src.w2c] + [cams[i][0] for i in group])[None]  # (1, V, T, 4, 4)
        K = torch.stack([src.K] + [cams[i][1] for i in group])[None]
        video = torch.zeros(1, len(group) + 1, *src.frames.shape)
        video[0, 0] = src.frames
        splat = inputs.splat(w2c, K) if pipe.takes_source_splat else None
        result = pipe(w2c, K, video, "rerender", num_inference_steps=steps,
                      generator=torch.Generator().manual_seed(seed), tracks=inputs.paired(w2c, K),
                      source_splat=splat, views_per_group=views_per_group, **prompt).video[0].cpu()
        for j, i in enumerate(group):
            generated[i] = result[j + 1]
        if progress is not None:
            progress()
    return generated


def image_to_video(pipe, image: Source, targets: list, num_frames: int, steps: int = SAMPLING_STEPS, seed: int = 0,
                   views_per_group: int | None = None, **prompt) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Every view generated from a first frame (EXPERIMENTAL: no shipped model was trained for it): the first
    camera's video (its frame 0 is ``image``) and one video per target spec, all (T, 3, H, W) in [0, 1]."""
    frames = torch.zeros(num_frames, 3, *image.size)
    frames[0] = image.frames[0]
    still = Source(frames, image.w2c[:1].expand(num_frames, 4, 4).clone(), image.K[:1].expand(num_frames, 3, 3).clone(),
                   image.crop, image.window, image.K_full[:1].expand(num_frames, 3, 3).clone(), image.cameras)
    inputs = SourceInputs(still, 1.0, None, None, [])
    cams = target_views(inputs, targets, seed)
    w2c = torch.stack([still.w2c] + [c[0] for c in cams])[None]
    K = torch.stack([still.K] + [c[1] for c in cams])[None]
    video = torch.zeros(1, len(cams) + 1, *frames.shape)
    video[0, 0] = frames
    observed = torch.zeros(1, len(cams) + 1, num_frames, dtype=torch.bool)
    observed[0, 0, 0] = True
    result = pipe(w2c, K, video, observed, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed),
                  views_per_group=views_per_group, **prompt).video[0].cpu()
    return result[0], list(result[1:])


@dataclass
class GeneratedViews:
    """What ``generate_views`` made, all (T, 3, H, W) in [0, 1] on the CPU: ``source`` (the source's frames as the
    model saw them; image-to-video: the first camera's generated video) and one video per entry of ``targets`` in
    ``views``; ``notes``: what was done to the source, for the user; ``truth``: the true frames of the (single)
    target's cameras when they were given, and ``scores`` of the generated view against them (``psnr`` dB, ``ssim``,
    means over frames)."""

    source: torch.Tensor
    views: list
    targets: list
    notes: list = field(default_factory=list)
    truth: torch.Tensor | None = None
    scores: dict | None = None

    @property
    def names(self) -> list[str]:
        """Column names: ``source``, each target (a file by its name), and ``truth`` when there is one."""
        return ["source"] + [Path(str(t)).name for t in self.targets] + (["truth"] if self.truth is not None else [])

    def save(self, out_dir: str | Path, fps: int = 8) -> Path:
        """Write ``view_00_source.mp4``, ``view_01.mp4``, ..., ``grid.mp4`` (all views side by side, the truth last
        when there is one) and ``contact_sheet.png`` (the first, middle and last frames, labelled) to ``out_dir``;
        returns it."""
        from mvtrack.viz import contact_sheet, tile_views, to_uint8_frames, write_mp4

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        videos = [to_uint8_frames(v) for v in [self.source, *self.views]]
        write_mp4(out / "view_00_source.mp4", videos[0], fps)
        for i, frames in enumerate(videos[1:], 1):
            write_mp4(out / f"view_{i:02d}.mp4", frames, fps)
        if self.truth is not None:
            videos.append(to_uint8_frames(self.truth))
        write_mp4(out / "grid.mp4", tile_views(videos, columns=len(videos)), fps)
        T = min(len(v) for v in videos)
        contact_sheet(out / "contact_sheet.png", [[v[t] for v in videos] for t in sorted({0, T // 2, T - 1})],
                      self.names)
        return out


def _no_progress(description: str, total: int | None) -> Callable[[], None]:
    return lambda: None


def generate_views(
    pipe,
    model_dir: str | Path | None = None,
    *,
    video: str | Path | None = None,
    image: str | Path | None = None,
    targets: list[str] | tuple[str, ...] = ("orbit:15",),
    cameras: str | Path | None = None,
    depth: str | Path | None = None,
    tracks3d: str | Path | None = None,
    depth_model=None,
    absolute_targets: bool = False,
    truth: str | Path | None = None,
    truth_start: int = 0,
    frames: int | None = None,
    size: tuple[int, int] | None = None,
    fov: float = FOV_DEGREES,
    steps: int = SAMPLING_STEPS,
    seed: int = 0,
    joint: bool = False,
    views_per_group: int | None = None,
    prompt: str | None = None,
    negative_prompt: str | None = None,
    guidance_scale: float | None = None,
    progress: Callable[[str, int | None], Callable[[], None]] | None = None,
) -> GeneratedViews:
    """New views of a video along camera trajectories (``video``), or every view from a first frame (``image``;
    EXPERIMENTAL: no shipped model was trained for it): what ``mvtrack generate`` does, options alike.

    Args:
        pipe: a ``MultiViewPipeline``; model_dir: where it came from (its ``mvtrack.json`` gives the training size
            and scene depth; None for a preset).
        video, image: exactly one; a video file or folder of frames, or an image.
        targets: one trajectory per generated view: ``NAME[:AMOUNT]`` (``data.source.target_cameras``) or a
            RealEstate10K file, relative to its first camera unless ``absolute_targets``.
        cameras, depth, tracks3d: files of the source (see ``load_source`` and ``prepare_source``); depth_model: a
            ``LearnedDepth`` or its local directory.
        truth: the true frames of the single target's cameras, if known (a held-out part of a static scene; a
            video, read from frame ``truth_start``): cropped like the source, scored and shown.
        frames, size: per view, and (H, W); default: the model's training length and size. fov: degrees, of a
            source without a camera file.
        joint: all targets in one generation (``views_per_group``: CVD's groups), else one pair per target.
        prompt, negative_prompt, guidance_scale: for a model with a text encoder.
        progress: ``progress(description, total) -> advance()``, or None.
    """
    if (video is None) == (image is None):
        raise ValueError("video, image: give exactly one (a video to re-render, or a first frame)")
    if not 0 < fov < 180:
        raise ValueError(f"fov: expected a horizontal field of view in (0, 180) degrees, got {fov}")
    if views_per_group is not None and not joint:
        raise ValueError("views_per_group: applies to joint generation only")
    if truth is not None and (image is not None or len(targets) != 1):
        raise ValueError("truth: applies to re-rendering a video along one target")
    if truth_start < 0:
        raise ValueError(f"truth_start: expected a frame index >= 0, got {truth_start}")
    if pipe.text is None and (prompt is not None or negative_prompt is not None):
        raise ValueError(f"{model_dir or 'the model'} has no text encoder (a fine-tuned Wan2.1 root has "
                         "text_encoder/ and tokenizer/); it takes no prompt")
    if guidance_scale is not None and guidance_scale > 1 and pipe.text is None:
        raise ValueError(f"classifier-free guidance needs a text encoder; {model_dir or 'the model'} has none (use 1)")
    from .rerender import trained_data

    trained = trained_data(model_dir)
    num_frames, hw = frames or trained.frames, tuple(size or (trained.height, trained.width))
    targets = list(targets)
    check_generation_size(min(len(targets), views_per_group or len(targets)) + 1 if joint or image else 2,
                          num_frames, hw)
    text = dict(prompt=prompt, negative_prompt=negative_prompt, guidance_scale=guidance_scale)
    mirrored = "error" if absolute_targets else "relative"
    progress = progress or _no_progress
    if image is not None:
        warnings.warn("image-to-video is experimental: the shipped models were not trained for it and produce "
                      "near-uniform frames after the first; see docs/models.md")
        first = load_source(image, hw, cameras=cameras, fov=fov, mirrored=mirrored, indices=[0])
        advance = progress("generating", 1)
        source, views = image_to_video(pipe, first, targets, num_frames, steps, seed, views_per_group, **text)
        advance()
        return GeneratedViews(source, views, targets)
    if depth_model is not None and isinstance(depth_model, (str, Path)):
        from mvtrack.data.learned_depth import LearnedDepth

        depth_model = LearnedDepth(depth_model, pipe._execution_device)
    source = load_source(video, hw, num_frames, cameras, depth, fov, mirrored)
    progress("source geometry", None)
    inputs = prepare_source(source, pipe.transformer, model_dir, tracks3d, depth_model)
    cams = target_views(inputs, targets, seed, absolute_targets)
    advance = progress("generating", 1 if joint else len(targets))
    views = rerender_video(pipe, inputs, cams, steps, seed, joint, views_per_group, progress=advance, **text)
    result = GeneratedViews(source.frames, views, targets, inputs.notes)
    if truth is not None:
        from mvtrack.evaluation import psnr, ssim

        frames_used = list(range(truth_start, truth_start + num_frames))
        result.truth = load_source(truth, hw, truth_start + num_frames, indices=frames_used).frames
        scored, true = views[0].numpy(), result.truth.numpy()
        result.scores = {"psnr": float(psnr(scored, true).mean()), "ssim": float(ssim(scored, true).mean())}
    return result
