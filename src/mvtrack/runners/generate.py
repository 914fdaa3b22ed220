"""Re-render a user's video along new cameras: the library behind ``mvtrack generate`` (and the real-footage
benchmark's model rows), so a Python user gets the same thing in a few lines::

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

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from mvtrack.data import PairedTracks, RealTracks, load_tracks3d
from mvtrack.data.real_tracks import points_tracks
from mvtrack.data.source import Source, crop_inverse, target_cameras
from mvtrack.data.source_geometry import (
    SCENE_DEPTH,
    SourceGeometry,
    dense_tracks,
    estimate_geometry,
    scale_cameras,
    scene_scale,
)

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
    meta = Path(model_dir) / "mvtrack.json" if model_dir is not None else None
    if meta is not None and meta.is_file():
        scene = json.loads(meta.read_text()).get("scene", {})
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
        is_file = Path(spec).is_file()
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
    steps: int = 25,
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
        result = pipe(w2c, K, video, "rerender", num_inference_steps=steps,
                      generator=torch.Generator().manual_seed(seed), tracks=inputs.paired(w2c, K),
                      views_per_group=views_per_group, **prompt).video[0].cpu()
        for j, i in enumerate(group):
            generated[i] = result[j + 1]
        if progress is not None:
            progress()
    return generated


def image_to_video(pipe, image: Source, targets: list, num_frames: int, steps: int = 25, seed: int = 0,
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
