"""``mvtrack eval``: score any system's generated videos against requested cameras and, where present, ground
truth. Nothing here needs an mvtrack model, so ReCamMaster's or anyone's outputs can be scored.

Directory layout (``docs/evaluation.md``)::

    GT_DIR/<clip>/view_<v>.txt    RealEstate10K camera file of view v (required for every scored view and view 0)
    GT_DIR/<clip>/view_<v>.mp4    ground-truth video: view 0 is the observed source; others enable PSNR / SSIM
    GT_DIR/<clip>/annotations.npz optional: depth (V, T, H, W), tracks (V, T, N, 2), visible (V, T, N)
    PRED_DIR/<clip>/view_<v>.mp4  generated view v >= 1

A problem with one clip or view (missing camera file, corrupt MP4, mismatched frame count or size) is reported
with the file and the reason, skipped, and listed under ``skipped``; the rest is scored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mvtrack.evaluation import (
    camera_errors,
    flow_tracks,
    pose_auc,
    psnr,
    ssim,
    tapvid_metrics,
    temporal_flickering,
    track_epe,
    warp_psnr,
)
from mvtrack.evaluation.colmap import estimate_trajectory
from mvtrack.evaluation.matching import Matcher, get_matcher, match_videos, pose_errors
from mvtrack.geometry import read_re10k
from mvtrack.viz import read_video

VIEW_FILE = re.compile(r"^view_(\d+)\.mp4$")
ANNOTATION_FIELDS = {"depth": 4, "tracks": 4, "visible": 3}


@dataclass
class EvalSettings:
    matcher: str = "auto"  # xfeat | sift | auto: matches for Mat.Pix and the two-view pose AUC
    cameras: bool = True  # COLMAP trajectory of every generated view (RotErr / TransErr / CamMC)
    planar_guard: bool = True
    tracks: bool = True  # tracks recovered by chained flow against annotations.npz tracks
    colmap_seed: int = 0


@dataclass
class ViewRecord:
    """Scores of one generated view; NaN where a metric's inputs are absent. ``camera_failure`` says why COLMAP
    gave no trajectory (None when it did or was not run)."""

    clip: str
    view: int
    metrics: dict = field(default_factory=dict)
    camera_failure: str | None = None
    pose_errors: list = field(default_factory=list)  # per time step, degrees (inf without a pose)


@dataclass
class Artifacts:
    """What the HTML report draws for one generated view (not written to JSON)."""

    generated: np.ndarray  # (T, H, W, 3) uint8
    source: np.ndarray | None = None
    reference: np.ndarray | None = None
    c2w_requested: np.ndarray | None = None  # (T, 4, 4)
    c2w_estimated: np.ndarray | None = None
    tracks_gt: np.ndarray | None = None  # (T, N, 2) and visible (T, N)
    visible_gt: np.ndarray | None = None
    tracks_pred: np.ndarray | None = None
    visible_pred: np.ndarray | None = None


@dataclass
class EvalResult:
    records: list[ViewRecord]
    skipped: list[dict]
    summary: dict
    artifacts: dict = field(default_factory=dict)  # (clip, view) -> Artifacts

    def to_json(self) -> dict:
        return {"summary": self.summary, "skipped": self.skipped, "views": [asdict(r) for r in self.records]}


class ClipError(ValueError):
    """A problem with one clip's or view's files; the message names the file."""


def _cameras(path: Path, frames: int, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(w2c (T, 4, 4), K (T, 3, 3)) from a RealEstate10K file at image ``size`` (H, W)."""
    if not path.is_file():
        raise ClipError(f"{path}: camera file missing")
    try:
        cams = read_re10k(path)
    except ValueError as e:
        raise ClipError(str(e)) from None
    if len(cams) != frames:
        raise ClipError(f"{path}: {len(cams)} cameras for a {frames}-frame video")
    return cams.w2c.double().numpy(), cams.K(*size).double().numpy()


def _video(path: Path) -> np.ndarray:
    try:
        return read_video(path)
    except (ValueError, FileNotFoundError) as e:
        raise ClipError(str(e)) from None


def _annotations(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        return {}
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {k: data[k] for k in data.files if k in ANNOTATION_FIELDS}
    except Exception as e:  # a damaged zip raises several types
        raise ClipError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    for k, ndim in ANNOTATION_FIELDS.items():
        if k in out and out[k].ndim != ndim:
            raise ClipError(f"{path}: field {k} should have {ndim} dimensions, got shape {out[k].shape}")
    if ("tracks" in out) != ("visible" in out):
        raise ClipError(f"{path}: tracks and visible must come together")
    return out


def _to_float(video: np.ndarray) -> np.ndarray:
    return video.transpose(0, 3, 1, 2).astype(np.float64) / 255  # (T, 3, H, W)


def _track_scores(generated: np.ndarray, tracks: np.ndarray, visible: np.ndarray, art: Artifacts) -> dict:
    """Recover tracks from the generated view by chained flow, queried where each ground-truth track is first
    visible, and score them (TAP-Vid ``first`` at 256 scale, EPE)."""
    T, H, W = generated.shape[:3]
    seen = visible.any(0)
    if not seen.any():
        return {}
    tracks, visible = tracks[:, seen].astype(np.float64), visible[:, seen]
    first = visible.argmax(0)  # (N,)
    n = np.arange(tracks.shape[1])
    queries = np.stack([first, tracks[first, n, 0], tracks[first, n, 1]], -1)
    pred, pred_vis = flow_tracks(generated, queries)
    art.tracks_gt, art.visible_gt, art.tracks_pred, art.visible_pred = tracks, visible, pred, pred_vis
    qp = np.stack([first, tracks[first, n, 1], tracks[first, n, 0]], -1)
    m = tapvid_metrics(qp, ~visible.T, tracks.transpose(1, 0, 2), ~pred_vis.T, pred.transpose(1, 0, 2),
                       query_mode="first", image_size=(H, W))
    return {"AJ": float(m["average_jaccard"]), "delta_avg": float(m["average_pts_within_thresh"]),
            "OA": float(m["occlusion_accuracy"]), "track_epe": track_epe(pred, tracks, visible)}


def evaluate_clip(
    clip_dir: Path, pred_dir: Path, settings: EvalSettings, matcher: Matcher | None
) -> tuple[list[ViewRecord], list[dict], dict]:
    """Score the generated views of one clip; returns (records, skipped, artifacts by view)."""
    name = clip_dir.name
    files = {int(m.group(1)): p for p in pred_dir.iterdir() if (m := VIEW_FILE.match(p.name))}  # view_1 or view_01
    views = sorted(v for v in files if v >= 1)
    if not views:
        raise ClipError(f"{pred_dir}: no generated views (view_<v>.mp4 with v >= 1)")
    annotations = _annotations(clip_dir / "annotations.npz")
    source = _video(clip_dir / "view_0.mp4") if (clip_dir / "view_0.mp4").is_file() else None
    records, skipped, artifacts = [], [], {}
    source_cameras = None  # (w2c, K) of view 0 at the source's size: Mat.Pix, pose AUC and warp PSNR need them
    if source is not None and (clip_dir / "view_0.txt").is_file():
        try:
            source_cameras = _cameras(clip_dir / "view_0.txt", len(source), source.shape[1:3])
        except ClipError as e:
            skipped.append({"clip": name, "view": 0, "reason": f"{e} (source metrics left out)"})
    for v in views:
        try:
            generated = _video(files[v])
            T, H, W = generated.shape[:3]
            if source is not None and source.shape != generated.shape:
                raise ClipError(f"{files[v]}: shape {generated.shape} (frames, height, width, 3) "
                                f"differs from the source {clip_dir / 'view_0.mp4'} {source.shape}")
            w2c, K = _cameras(clip_dir / f"view_{v}.txt", T, (H, W))
            reference = None
            if (clip_dir / f"view_{v}.mp4").is_file():
                reference = _video(clip_dir / f"view_{v}.mp4")
                if reference.shape != generated.shape:
                    raise ClipError(f"{files[v]}: shape {generated.shape} differs from the ground "
                                    f"truth {clip_dir / f'view_{v}.mp4'} {reference.shape}")
            for k in ("depth", "tracks", "visible"):
                if k in annotations and (annotations[k].shape[0] <= v or annotations[k].shape[1] != T):
                    raise ClipError(f"{clip_dir / 'annotations.npz'}: {k} {annotations[k].shape} does not cover "
                                    f"view {v} with {T} frames")
            if "depth" in annotations and annotations["depth"].shape[2:] != (H, W):
                raise ClipError(f"{clip_dir / 'annotations.npz'}: depth {annotations['depth'].shape[2:]} does not "
                                f"match the video size {(H, W)}")
        except ClipError as e:
            skipped.append({"clip": name, "view": v, "reason": str(e)})
            continue
        rec = ViewRecord(name, v)
        art = Artifacts(generated, source, reference, np.linalg.inv(w2c))
        gen_f = _to_float(generated)
        rec.metrics["flicker"] = temporal_flickering(gen_f)
        if reference is not None:
            ref_f = _to_float(reference)
            rec.metrics["psnr"] = float(psnr(gen_f.reshape(-1, H, W), ref_f.reshape(-1, H, W)))  # of the video MSE
            rec.metrics["ssim"] = float(np.mean(ssim(gen_f, ref_f)))
        if source_cameras is not None:  # the source has this view's shape (checked above)
            w2c0, K0 = source_cameras
            if matcher is not None:
                matches = match_videos(source, generated, matcher)
                rec.metrics["mat_pix"] = float(np.mean([len(k0) for k0, _ in matches]))  # Track2View's Mat.Pix
                rec.pose_errors = pose_errors(matches, w2c0, w2c, K0, K).tolist()
            if "depth" in annotations:
                d = annotations["depth"].astype(np.float64)
                rec.metrics["warp_psnr"] = warp_psnr(gen_f, _to_float(source), d[0], d[v], w2c0, K0, w2c, K)
        if settings.tracks and "tracks" in annotations:
            gt_tracks, gt_visible = annotations["tracks"][v], annotations["visible"][v].astype(bool)
            rec.metrics.update(_track_scores(generated, gt_tracks, gt_visible, art))
        if settings.cameras:
            est = estimate_trajectory(generated, K[0], planar_guard=settings.planar_guard, seed=settings.colmap_seed)
            if est.ok:
                rec.metrics.update(camera_errors(est.c2w, art.c2w_requested))
                art.c2w_estimated = est.c2w
            else:
                rec.camera_failure = est.failure
        records.append(rec)
        artifacts[v] = art
    return records, skipped, artifacts


def summarize(records: list[ViewRecord], skipped: list[dict], settings: EvalSettings) -> dict:
    """Means over scored views (NaN-aware, with counts), camera failure rate, pooled two-view pose AUC."""
    keys = sorted({k for r in records for k in r.metrics})
    summary: dict = {"views_scored": len(records), "views_skipped": len(skipped), "metrics": {}}
    for k in keys:
        values = np.array([r.metrics.get(k, np.nan) for r in records], np.float64)
        present = values[~np.isnan(values)]  # inf stays: the PSNR of an exact copy
        with np.errstate(invalid="ignore"):
            summary["metrics"][k] = {
                "mean": float(present.mean()) if present.size else math.nan,
                "std": float(present.std()) if present.size else math.nan,
                "n": int(present.size),
            }
    if settings.cameras and records:
        failed = [r for r in records if r.camera_failure]
        summary["camera_failures"] = {"failed": len(failed), "attempted": len(records),
                                      "rate": len(failed) / len(records)}
    errors = [e for r in records for e in r.pose_errors]
    if errors:
        auc = pose_auc(errors)
        summary["pose_auc"] = {"@5": auc[0], "@10": auc[1], "@20": auc[2], "pairs": len(errors)}
    return summary


def evaluate_dirs(
    pred_dir: str | Path,
    gt_dir: str | Path,
    settings: EvalSettings | None = None,
    progress: Callable[[str], None] | None = None,
) -> EvalResult:
    """Score every clip folder of ``pred_dir`` that has a counterpart in ``gt_dir``; see the module docstring."""
    settings = settings or EvalSettings()
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    for label, d in (("--pred", pred_dir), ("--gt", gt_dir)):
        if not d.is_dir():
            raise FileNotFoundError(f"{label} {d}: not a directory")
    clips = sorted(p for p in pred_dir.iterdir() if p.is_dir())
    if not clips:
        raise ValueError(f"--pred {pred_dir}: no clip folders (expected <clip>/view_<v>.mp4)")
    matcher = get_matcher(settings.matcher)
    records, skipped, artifacts = [], [], {}
    for clip in clips:
        try:
            if not (gt_dir / clip.name).is_dir():
                raise ClipError(f"{gt_dir / clip.name}: no ground-truth folder for predicted clip {clip.name}")
            r, s, a = evaluate_clip(gt_dir / clip.name, clip, settings, matcher)
        except ClipError as e:
            skipped.append({"clip": clip.name, "view": None, "reason": str(e)})
        else:
            records += r
            skipped += s
            artifacts.update({(clip.name, v): art for v, art in a.items()})
        if progress is not None:
            progress(clip.name)
    summary = summarize(records, skipped, settings)
    summary["matcher"] = matcher.name
    return EvalResult(records, skipped, summary, artifacts)
