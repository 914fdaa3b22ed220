"""``mvtrack eval``: score any system's generated videos against requested cameras and, where present, ground
truth. Nothing here needs an mvtrack model, so ReCamMaster's or anyone's outputs can be scored.

Directory layout (``docs/evaluation.md``)::

    GT_DIR/<clip>/view_<v>.txt    RealEstate10K camera file of view v (required for every scored view and view 0)
    GT_DIR/<clip>/view_<v>.mp4    ground-truth video: view 0 is the observed source; others enable PSNR / SSIM
    GT_DIR/<clip>/annotations.npz optional: depth (V, T, H, W), tracks (V, T, N, 2), visible (V, T, N)
    PRED_DIR/<clip>/view_<v>.mp4  generated view v >= 1

A problem with one clip's or view's files (missing camera file, corrupt MP4, mismatched frame count or size, NaN or
mismatched annotations) is reported with the file and the reason, skipped, and listed under ``skipped``; the rest is
scored. A metric that fails on a view's content costs that metric only: it stays NaN, the view is scored on the
rest, and the reason is listed under the view's ``metric_failures`` and counted in the summary. Files that load are
never skipped, so the count of scored views depends on the files alone, not on the processor.

Modes: ``rerender`` (view 0 is the observed source; pair metrics compare each generated view with it) and
``joint`` (every view, view 0 included, is generated: ``PRED/<clip>/view_0.mp4`` too; pair metrics compare every
pair of generated views, as CVD's protocol, plus cross-view track consistency where annotations have tracks).
"""

from __future__ import annotations

import math
import re
from itertools import combinations
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
from mvtrack.geometry.sfm import CHECKS, estimate_trajectory
from mvtrack.evaluation.cross_view import cross_view_track_consistency
from mvtrack.evaluation.epipolar import epipolar_scores
from mvtrack.evaluation.matching import Matcher, get_matcher, match_videos, pose_errors, rotation_only_steps
from mvtrack.geometry import read_re10k
from mvtrack.viz import read_video

VIEW_FILE = re.compile(r"^view_(\d+)\.mp4$")
MODES = ("rerender", "joint")
EPIPOLAR_KEYS = {"median_px": "epi_median_px", "frac_1px": "epi_1px", "frac_2px": "epi_2px", "frac_4px": "epi_4px",
                 "matches": "epi_matches"}
XTRACK_KEYS = {"median_px": "xtrack_median_px", "frac_1px": "xtrack_1px", "frac_2px": "xtrack_2px",
               "frac_4px": "xtrack_4px", "tracked": "xtrack_tracked", "points": "xtrack_points"}
ANNOTATION_FIELDS = {"depth": 4, "tracks": 4, "visible": 3}


@dataclass
class EvalSettings:
    matcher: str = "auto"  # xfeat | sift | auto: matches for Mat.Pix and the two-view pose AUC
    cameras: bool = True  # COLMAP trajectory of every generated view (RotErr / TransErr / CamMC)
    camera_check: str = "reprojection"  # how a COLMAP model is accepted (colmap.estimate_trajectory's check)
    tracks: bool = True  # tracks recovered by chained flow against annotations.npz tracks
    pairs: bool = True  # metrics of matched features between views: Mat.Pix, pose AUC, epipolar consistency
    colmap_seed: int = 0
    mode: str = "rerender"  # rerender: view 0 observed; joint: every view generated, pairs scored between them

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"EvalSettings.mode: expected one of {MODES}, got {self.mode!r}")
        if self.camera_check not in CHECKS:
            raise ValueError(f"EvalSettings.camera_check: expected one of {CHECKS}, got {self.camera_check!r}")


@dataclass
class ViewRecord:
    """Scores of one generated view; NaN where a metric's inputs are absent. ``camera_failure`` says why COLMAP
    gave no trajectory (None when it did or was not run)."""

    clip: str
    view: int
    metrics: dict = field(default_factory=dict)
    camera_failure: str | None = None
    pose_errors: list = field(default_factory=list)  # per time step, degrees (inf without a pose)
    partner: int | None = None  # the view the pair metrics compare with (0: the source; joint mode: any)
    rotation_only: int = 0  # pose_errors entries scored by rotation alone (the requested translation is zero)
    epipolar_failure: str | None = None
    xtrack_failure: str | None = None  # why cross-view track consistency gave NaN (joint mode, with tracks)
    metric_failures: dict = field(default_factory=dict)  # metric group -> why it raised (its metrics stay NaN)


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
    files: dict = field(default_factory=dict)  # label -> path of the full-size videos, linked from the report


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
        if k in ("depth", "tracks") and k in out:
            if out[k].dtype.kind not in "fiu":
                raise ClipError(f"{path}: field {k} should be numeric, got {out[k].dtype}")
            if not np.isfinite(out[k]).all():
                raise ClipError(f"{path}: field {k} contains NaN or inf")
    if ("tracks" in out) != ("visible" in out):
        raise ClipError(f"{path}: tracks and visible must come together")
    if "tracks" in out and out["tracks"].shape[:3] != out["visible"].shape:
        raise ClipError(f"{path}: tracks {out['tracks'].shape} and visible {out['visible'].shape} do not match")
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


def _load_view(clip_dir: Path, path: Path, v: int, source, annotations) -> tuple:
    """(generated (T, H, W, 3) uint8, w2c (T, 4, 4), K (T, 3, 3), reference video or None) of view ``v``, checked
    against the source, the ground truth and the annotations; ClipError naming the file otherwise."""
    generated = _video(path)
    T, H, W = generated.shape[:3]
    if source is not None and source.shape != generated.shape:
        raise ClipError(f"{path}: shape {generated.shape} (frames, height, width, 3) "
                        f"differs from the source {clip_dir / 'view_0.mp4'} {source.shape}")
    w2c, K = _cameras(clip_dir / f"view_{v}.txt", T, (H, W))
    reference = None
    if (clip_dir / f"view_{v}.mp4").is_file():
        reference = _video(clip_dir / f"view_{v}.mp4")
        if reference.shape != generated.shape:
            raise ClipError(f"{path}: shape {generated.shape} differs from the ground "
                            f"truth {clip_dir / f'view_{v}.mp4'} {reference.shape}")
    for k in ("depth", "tracks", "visible"):
        if k in annotations and (annotations[k].shape[0] <= v or annotations[k].shape[1] != T):
            raise ClipError(f"{clip_dir / 'annotations.npz'}: {k} {annotations[k].shape} does not cover "
                            f"view {v} with {T} frames")
    if "depth" in annotations and annotations["depth"].shape[2:] != (H, W):
        raise ClipError(f"{clip_dir / 'annotations.npz'}: depth {annotations['depth'].shape[2:]} does not "
                        f"match the video size {(H, W)}")
    return generated, w2c, K, reference


def _guarded(rec: ViewRecord, group: str, fn: Callable, *args) -> None:
    """Run one metric group; an exception costs that group (its metrics stay NaN, the reason is recorded), never
    the view. Estimators (OpenCV's RANSAC, COLMAP) meet degenerate content on one processor and not on another."""
    try:
        fn(*args)
    except Exception as e:  # any library error on odd content; the reason names it
        rec.metric_failures[group] = f"{type(e).__name__}: {e}".strip()


def _score_view(rec: ViewRecord, generated, w2c, K, reference, source, source_cameras, annotations,
                settings: EvalSettings) -> Artifacts:
    """Per-view metrics into ``rec.metrics``: flicker, PSNR / SSIM, warp PSNR, tracks, COLMAP camera errors."""
    T, H, W = generated.shape[:3]
    v = rec.view
    art = Artifacts(generated, source if settings.mode == "rerender" else None, reference, np.linalg.inv(w2c))
    gen_f = _to_float(generated)

    def flicker():
        rec.metrics["flicker"] = temporal_flickering(gen_f)

    def image():
        ref_f = _to_float(reference)
        rec.metrics["psnr"] = float(psnr(gen_f.reshape(-1, H, W), ref_f.reshape(-1, H, W)))  # of the video MSE
        rec.metrics["ssim"] = float(np.mean(ssim(gen_f, ref_f))) if min(H, W) >= 11 else math.nan

    def warp():
        w2c0, K0 = source_cameras
        d = annotations["depth"].astype(np.float64)
        rec.metrics["warp_psnr"] = warp_psnr(gen_f, _to_float(source), d[0], d[v], w2c0, K0, w2c, K)

    def tracks():
        gt_tracks, gt_visible = annotations["tracks"][v], annotations["visible"][v].astype(bool)
        rec.metrics.update(_track_scores(generated, gt_tracks, gt_visible, art))

    def cameras():
        est = estimate_trajectory(generated, K[0], check=settings.camera_check, seed=settings.colmap_seed)
        if est.ok:
            rec.metrics.update(camera_errors(est.c2w, art.c2w_requested))
            art.c2w_estimated = est.c2w
        else:
            rec.camera_failure = est.failure

    _guarded(rec, "flicker", flicker)
    if reference is not None:
        _guarded(rec, "psnr/ssim", image)
    if settings.mode == "rerender" and source_cameras is not None and "depth" in annotations:
        _guarded(rec, "warp_psnr", warp)
    if settings.tracks and "tracks" in annotations:
        _guarded(rec, "tracks", tracks)
    if settings.cameras:
        _guarded(rec, "cameras", cameras)
        if "cameras" in rec.metric_failures:  # counted with the other camera failures, with its reason
            rec.camera_failure = f"estimation raised ({rec.metric_failures['cameras']})"
    return art


def _pair_scores(rec: ViewRecord, video_a, cams_a, video_b, cams_b, matcher: Matcher) -> None:
    """Pair metrics of same-time frames of two videos into ``rec``: Mat.Pix, CVD pose errors (rotation alone where
    the requested translation is zero), epipolar consistency under the requested cameras."""
    (w2c_a, K_a), (w2c_b, K_b) = cams_a, cams_b
    matches = []

    def match():
        matches.extend(match_videos(video_a, video_b, matcher))
        rec.metrics["mat_pix"] = float(np.mean([len(k0) for k0, _ in matches]))  # Track2View's Mat.Pix

    def pose():
        rec.pose_errors = pose_errors(matches, w2c_a, w2c_b, K_a, K_b).tolist()
        rec.rotation_only = int(rotation_only_steps(w2c_a, w2c_b).sum())

    def epipolar():
        epi = epipolar_scores(matches, w2c_a, K_a, w2c_b, K_b)
        rec.metrics.update({EPIPOLAR_KEYS[k]: float(epi[k]) for k in EPIPOLAR_KEYS})
        rec.epipolar_failure = epi.get("reason")

    _guarded(rec, "matching", match)
    if "matching" not in rec.metric_failures:
        _guarded(rec, "pose", pose)
        _guarded(rec, "epipolar", epipolar)


def _xtrack_scores(rec: ViewRecord, a: int, loaded_a, loaded_b, annotations) -> None:
    """Cross-view track consistency of generated views ``a`` and ``rec.view`` into ``rec`` (joint mode)."""
    b = rec.view
    (video_a, (w2c_a, K_a)), (video_b, (w2c_b, K_b)) = loaded_a, loaded_b
    tracks, visible = annotations["tracks"], annotations["visible"].astype(bool)
    xt = cross_view_track_consistency(video_a, video_b, tracks[a], visible[a], tracks[b], visible[b],
                                      w2c_a, K_a, w2c_b, K_b)
    rec.metrics.update({XTRACK_KEYS[k]: float(xt[k]) for k in XTRACK_KEYS})
    rec.xtrack_failure = xt.get("reason")


def evaluate_clip(
    clip_dir: Path, pred_dir: Path, settings: EvalSettings, matcher: Matcher | None
) -> tuple[list[ViewRecord], list[dict], dict]:
    """Score the generated views of one clip; returns (records, skipped, artifacts by view)."""
    name = clip_dir.name
    joint = settings.mode == "joint"
    files = {int(m.group(1)): p for p in pred_dir.iterdir() if (m := VIEW_FILE.match(p.name))}  # view_1 or view_01
    views = sorted(v for v in files if v >= (0 if joint else 1))
    if not views:
        raise ClipError(f"{pred_dir}: no generated views (view_<v>.mp4 with v >= {0 if joint else 1})")
    annotations = _annotations(clip_dir / "annotations.npz")
    source = _video(clip_dir / "view_0.mp4") if (clip_dir / "view_0.mp4").is_file() else None
    records, skipped, artifacts = [], [], {}
    source_cameras = None  # (w2c, K) of view 0 at the source's size: Mat.Pix, pose AUC and warp PSNR need them
    if not joint and source is not None and (clip_dir / "view_0.txt").is_file():
        try:
            source_cameras = _cameras(clip_dir / "view_0.txt", len(source), source.shape[1:3])
        except ClipError as e:
            skipped.append({"clip": name, "view": 0, "reason": f"{e} (source metrics left out)"})
    loaded = {}  # view -> (generated, (w2c, K)) of the views that were scored
    for v in views:
        try:
            generated, w2c, K, reference = _load_view(clip_dir, files[v], v, source, annotations)
        except ClipError as e:
            skipped.append({"clip": name, "view": v, "reason": str(e)})
            continue
        rec = ViewRecord(name, v)
        art = _score_view(rec, generated, w2c, K, reference, source, source_cameras, annotations, settings)
        art.files = {"generated": files[v], **({"ground truth": clip_dir / f"view_{v}.mp4"} if reference is not None
                                               else {})}
        if not joint and source_cameras is not None and matcher is not None:
            rec.partner = 0
            _pair_scores(rec, source, source_cameras, generated, (w2c, K), matcher)
        records.append(rec)
        artifacts[v] = art
        loaded[v] = (generated, (w2c, K))
    if joint and matcher is not None:
        for a, b in combinations(sorted(loaded), 2):
            rec = ViewRecord(name, b, partner=a)
            _pair_scores(rec, loaded[a][0], loaded[a][1], loaded[b][0], loaded[b][1], matcher)
            if settings.tracks and "tracks" in annotations:
                _guarded(rec, "xtrack", _xtrack_scores, rec, a, loaded[a], loaded[b], annotations)
            records.append(rec)
    return records, skipped, artifacts


def summarize(records: list[ViewRecord], skipped: list[dict], settings: EvalSettings) -> dict:
    """Means over scored views (NaN-aware, with counts), camera failure rate, pooled two-view pose AUC."""
    keys = sorted({k for r in records for k in r.metrics})
    views = {(r.clip, r.view) for r in records if not (settings.mode == "joint" and r.partner is not None)}
    summary: dict = {"views_scored": len(views), "views_skipped": len(skipped), "mode": settings.mode, "metrics": {}}
    if settings.mode == "joint":
        summary["pairs_scored"] = sum(r.partner is not None for r in records)
    for k in keys:
        values = np.array([r.metrics.get(k, np.nan) for r in records], np.float64)
        present = values[~np.isnan(values)]  # inf stays: the PSNR of an exact copy
        with np.errstate(invalid="ignore"):
            summary["metrics"][k] = {
                "mean": float(present.mean()) if present.size else math.nan,
                "std": float(present.std()) if present.size else math.nan,
                "n": int(present.size),
            }
    per_view = [r for r in records if not (settings.mode == "joint" and r.partner is not None)]
    if settings.cameras and per_view:
        failed = [r for r in per_view if r.camera_failure]
        reasons: dict = {}
        for r in failed:
            reason = re.sub(r"\b\d+(\.\d+)?\b", "N", r.camera_failure)  # group "3 of 8 frames ..." and "... 2.1 px" alike
            reasons[reason] = reasons.get(reason, 0) + 1
        summary["camera_failures"] = {"failed": len(failed), "attempted": len(per_view),
                                      "rate": len(failed) / len(per_view), "reasons": reasons}
    errors = [e for r in records for e in r.pose_errors]
    if errors:
        auc = pose_auc(errors)
        summary["pose_auc"] = {"@5": auc[0], "@10": auc[1], "@20": auc[2], "pairs": len(errors),
                               "rotation_only": sum(r.rotation_only for r in records)}
    epi_failed = [r.epipolar_failure for r in records if r.epipolar_failure]
    if epi_failed:
        summary["epipolar_failures"] = {"failed": len(epi_failed), "reasons": sorted(set(epi_failed))}
    metric_failed: dict = {}
    for r in records:
        for group, reason in r.metric_failures.items():
            entry = metric_failed.setdefault(group, {"failed": 0, "reasons": {}})
            entry["failed"] += 1
            reason = re.sub(r"\b\d+(\.\d+)?\b", "N", reason)
            entry["reasons"][reason] = entry["reasons"].get(reason, 0) + 1
    if metric_failed:
        summary["metric_failures"] = metric_failed
    xt_failed = [r.xtrack_failure for r in records if r.xtrack_failure]
    if xt_failed:
        summary["xtrack_failures"] = {"failed": len(xt_failed), "reasons": sorted(set(xt_failed))}
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
    matcher = get_matcher(settings.matcher) if settings.pairs else None
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
    summary["matcher"] = matcher.name if matcher is not None else "none"
    return EvalResult(records, skipped, summary, artifacts)
