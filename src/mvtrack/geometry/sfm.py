"""Camera trajectory of a video by structure from motion: pycolmap's SIFT features, sequential matching and the
global mapper (GLOMAP), with the intrinsics fixed to the given ones (the evaluation's camera metrics) or refined
from a first guess (cameras of a user's video that came without a camera file). Conventions and known failure
modes in METRICS.md: failures are returned with a reason and counted by the caller, never dropped.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np


MIN_SIDE = 256  # frames are upscaled (cubic) until their short side reaches this; SIFT is unusable at 64 px
PEAK_THRESHOLD = 0.0066  # SIFT detection threshold (COLMAP's default 0.0066)


@dataclass
class TrajectoryEstimate:
    """Result of :func:`estimate_trajectory`.

    ``c2w`` (T, 4, 4) camera-to-world poses in the reconstruction's frame (OpenCV axes, arbitrary scale), or None
    when the reconstruction failed; ``failure`` names the reason then. ``registered`` counts the frames with a pose
    and ``points`` the 3D points of the kept model; ``reprojection_px`` is its mean reprojection error in the
    video's pixels; ``planar_gap_deg`` the largest rotation disagreement with the reconstruction without planar
    rejection (``check="planar"`` only, else NaN).
    """

    c2w: np.ndarray | None
    failure: str | None = None
    registered: int = 0
    points: int = 0
    reprojection_px: float = float("nan")
    planar_gap_deg: float = float("nan")
    info: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.c2w is not None


def _pycolmap():
    try:
        import pycolmap
    except ImportError as e:  # pragma: no cover - pycolmap is a dependency
        raise ImportError("camera-pose evaluation needs pycolmap (pip install pycolmap)") from e
    pycolmap.logging.minloglevel = 3  # glog: fatal only; failures come back through TrajectoryEstimate
    return pycolmap


def _write_frames(frames: np.ndarray, image_dir: Path, scale: float) -> None:
    image_dir.mkdir(parents=True)
    for t, frame in enumerate(frames):
        if scale != 1:
            frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(image_dir / f"{t:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def _map(pycolmap, work: Path, image_dir: Path, T: int, max_H_inlier_ratio: float | None, overlap: int, seed: int,
         refine_focal: bool = False):
    """Match (into a copy of the features database) and run the global mapper; (c2w (T, 4, 4) NaN-padded, points,
    mean reprojection error in the matched images' pixels, the model's (fx, fy, cx, cy) in those pixels)."""
    import shutil

    tag = "default" if max_H_inlier_ratio is None else f"H{max_H_inlier_ratio:g}"
    db = work / f"{tag}.db"
    shutil.copy(work / "features.db", db)
    pairing = pycolmap.SequentialPairingOptions(overlap=overlap)
    verification = pycolmap.TwoViewGeometryOptions()
    verification.ransac.random_seed = seed  # COLMAP seeds RANSAC from the clock by default
    if max_H_inlier_ratio is not None:
        verification.max_H_inlier_ratio = max_H_inlier_ratio
    matching = pycolmap.FeatureMatchingOptions(num_threads=1)
    pycolmap.match_sequential(db, matching_options=matching, pairing_options=pairing,
                              verification_options=verification, device=pycolmap.Device.cpu)
    # One thread and fixed seeds everywhere: COLMAP's results otherwise vary from run to run.
    options = pycolmap.GlobalPipelineOptions(random_seed=seed, num_threads=1)
    options.mapper.random_seed = seed
    options.mapper.num_threads = 1
    options.mapper.bundle_adjustment.refine_focal_length = refine_focal  # else the requested K is the truth
    options.mapper.bundle_adjustment.refine_principal_point = False
    options.mapper.bundle_adjustment.refine_extra_params = False
    models = pycolmap.global_mapping(db, image_dir, work / f"sparse_{tag}", options)
    if not models:
        return None, 0, float("nan"), None
    model = max(models.values(), key=lambda m: m.num_reg_images())
    c2w = np.full((T, 4, 4), np.nan)
    for image in model.images.values():
        if image.has_pose:
            w2c = np.eye(4)
            w2c[:3] = image.cam_from_world().matrix()
            c2w[int(Path(image.name).stem)] = np.linalg.inv(w2c)
    params = next(iter(model.cameras.values())).params  # PINHOLE: fx, fy, cx, cy
    return c2w, model.num_points3D(), float(model.compute_mean_reprojection_error()), tuple(float(p) for p in params)


def _max_rotation_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest angle (degrees) between the first-frame-relative rotations of two trajectories (T, 4, 4)."""
    ra, rb = np.linalg.inv(a[0])[None] @ a, np.linalg.inv(b[0])[None] @ b
    cos = (np.trace(np.swapaxes(ra[:, :3, :3], 1, 2) @ rb[:, :3, :3], axis1=1, axis2=2) - 1) / 2
    return float(np.rad2deg(np.arccos(np.clip(cos, -1, 1))).max())


CHECKS = ("reprojection", "planar", "none")


def estimate_trajectory(
    frames: np.ndarray,
    K: np.ndarray,
    min_side: int = MIN_SIDE,
    overlap: int = 10,
    check: str = "reprojection",
    max_reprojection_px: float = 1.0,
    planar_tolerance_deg: float = 2.0,
    min_points: int = 20,
    peak_threshold: float = PEAK_THRESHOLD,
    seed: int = 0,
    refine_focal: bool = False,
) -> TrajectoryEstimate:
    """Camera-to-world poses of every frame of a video, with the intrinsics fixed to ``K`` (or refined from it).

    Args:
        frames: (T, H, W, 3) uint8 RGB.
        K: (3, 3) pixel intrinsics shared by every frame (our convention: pixel centres at integers).
        min_side: frames whose short side is smaller are upscaled (cubic) to it first; K is scaled to match.
        overlap: sequential matching window (frames).
        check: how a registered model is accepted. ``reprojection`` (default): every frame registered, at least
            ``min_points`` 3D points and a mean reprojection error of at most ``max_reprojection_px`` (the video's
            pixels). ``planar``: the old planar guard, also reconstructing with ``max_H_inlier_ratio = 1.0`` and
            failing when the rotations disagree by more than ``planar_tolerance_deg``; it rejects exact copies of
            real-looking footage (docs/evaluation.md) and is kept only for comparison. ``none``: registration and
            point count only.
        min_points: fewer 3D points than this is a failure.
        peak_threshold: SIFT peak threshold; lower finds more features in weakly textured frames.
        seed: random seed of the mapper (results repeat for a seed).
        refine_focal: refine the focal lengths from ``K`` (a video without a camera file: ``K`` from a guessed
            field of view); the refined intrinsics are in ``info["K"]``.

    Returns:
        A :class:`TrajectoryEstimate`; it fails (``c2w`` None, ``failure`` set) when there are fewer than 3
        frames, the frames are blank or non-finite, no model is found, a frame is not registered, or the check
        fails. Never raises on such input.
    """
    if check not in CHECKS:
        raise ValueError(f"check: expected one of {CHECKS}, got {check!r}")
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames: expected (T, H, W, 3) uint8, got {frames.shape} {frames.dtype}")
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise ValueError(f"K: expected (3, 3), got {K.shape}")
    if not np.isfinite(K).all() or K[0, 0] <= 0 or K[1, 1] <= 0:
        return TrajectoryEstimate(None, f"K: expected finite intrinsics with positive focal lengths, got {K.tolist()}")
    T, H, W = frames.shape[:3]
    if T < 3:
        return TrajectoryEstimate(None, f"need at least 3 frames to reconstruct, got {T}")
    if min(H, W) == 0 or all(f.std() == 0 for f in frames):
        return TrajectoryEstimate(None, "blank frames: nothing to match")
    pycolmap = _pycolmap()
    scale = max(1.0, math.ceil(min_side / min(H, W)))
    fx, fy = K[0, 0] * scale, K[1, 1] * scale
    cx, cy = (K[0, 2] + 0.5) * scale, (K[1, 2] + 0.5) * scale  # COLMAP puts pixel centres at +0.5
    with tempfile.TemporaryDirectory(prefix="mvtrack_colmap_") as tmp:
        work = Path(tmp)
        image_dir = work / "images"
        _write_frames(frames, image_dir, scale)
        reader = pycolmap.ImageReaderOptions(camera_model="PINHOLE", camera_params=f"{fx},{fy},{cx},{cy}")
        extraction = pycolmap.FeatureExtractionOptions(use_gpu=False, num_threads=1)
        extraction.sift.peak_threshold = peak_threshold
        pycolmap.extract_features(work / "features.db", image_dir, camera_mode=pycolmap.CameraMode.SINGLE,
                                  reader_options=reader, extraction_options=extraction, device=pycolmap.Device.cpu)
        c2w, points, reproj, params = _map(pycolmap, work, image_dir, T, None, overlap, seed, refine_focal)
        if c2w is None:
            return TrajectoryEstimate(None, "no reconstruction (too few verified matches)")
        registered = int(np.isfinite(c2w[:, 0, 0]).sum())
        fx_m, fy_m, cx_m, cy_m = params
        K_model = np.array([[fx_m / scale, 0, cx_m / scale - 0.5], [0, fy_m / scale, cy_m / scale - 0.5], [0, 0, 1]])
        result = TrajectoryEstimate(None, registered=registered, points=points, reprojection_px=reproj / scale,
                                    info={"upscale": scale, "c2w": c2w, "K": K_model})
        if registered < T:
            missing = [t for t in range(T) if not np.isfinite(c2w[t, 0, 0])]
            result.failure = f"{T - registered} of {T} frames not registered (first missing: frame {missing[0]})"
            return result
        if points < min_points:
            result.failure = f"only {points} 3D points (< {min_points})"
            return result
        if check == "reprojection" and not result.reprojection_px <= max_reprojection_px:
            result.failure = (f"mean reprojection error {result.reprojection_px:.2f} px (> {max_reprojection_px})")
            return result
        if check == "planar":
            other, _, _, _ = _map(pycolmap, work, image_dir, T, 1.0, overlap, seed, refine_focal)
            if other is None or not np.isfinite(other).all():
                result.failure = "planar guard: the reconstruction without planar rejection failed"
                return result
            result.planar_gap_deg = _max_rotation_gap(c2w, other)
            result.info["c2w_no_planar_rejection"] = other
            if result.planar_gap_deg > planar_tolerance_deg:
                result.failure = (f"planar guard: the two reconstructions disagree by {result.planar_gap_deg:.1f} "
                                  f"degrees (> {planar_tolerance_deg})")
                return result
    result.c2w = c2w
    return result
