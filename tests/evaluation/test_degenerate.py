"""Every metric on degenerate input (NaN, empty, T = 1, no matches, blank frames): NaN or a counted failure with a
reason, never a crash (issue 11), and the two library bugs of issue 13."""

import math
import re

import numpy as np
import pytest

from mvtrack.evaluation import (
    angle_error_mat,
    camera_errors,
    pose_auc,
    psnr,
    relative_pose_error,
    tapvid_metrics,
    temporal_flickering,
    track_epe,
)
from mvtrack.evaluation.matching import get_matcher, mat_pix, match_videos, pose_errors, rotation_only_steps
from mvtrack.evaluation.pose import estimate_rotation


def test_pose_auc_rejects_negative_and_nan_errors_and_counts_inf_as_failure():
    with pytest.raises(ValueError, match="errors: expected angles >= 0"):
        pose_auc([-1])  # used to give values above 1
    # NaN is not a failure but an error nobody measured (issue 24: all-NaN errors used to score 0, silently)
    with pytest.raises(ValueError, match=r"errors: 1 of 2 are NaN \(first at index 1\)"):
        pose_auc([1, float("nan")], [5])
    assert pose_auc([1, float("inf")], [5])[0] == pytest.approx(0.45)  # (0.25 + 4 * 0.5) / 5
    assert all(0 <= a <= 1 for a in pose_auc([0.0, 0.0, 30.0]))
    assert all(math.isnan(a) for a in pose_auc([]))


def test_tapvid_rejects_query_frames_outside_the_video():
    occ = np.zeros((1, 4), bool)
    tracks = np.zeros((1, 4, 2))
    with pytest.raises(ValueError, match=r"query frames \(t\) must lie in \[0, 3\]"):
        tapvid_metrics(np.array([[-1.0, 0, 0]]), occ, tracks, occ, tracks)  # used to wrap around to frame 3
    with pytest.raises(ValueError, match="must lie in"):
        tapvid_metrics(np.array([[4.0, 0, 0]]), occ, tracks, occ, tracks)
    one = tapvid_metrics(np.array([[0.0, 0, 0]]), occ[:, :1], tracks[:, :1], occ[:, :1], tracks[:, :1])
    assert math.isnan(one["average_jaccard"])  # T = 1 in "first" mode: nothing after the query frame
    nan_pred = tapvid_metrics(np.array([[0.0, 0, 0]]), occ, tracks, occ, tracks * np.nan)
    assert nan_pred["pts_within_16"] == 0.0  # non-finite predictions are misses


def test_image_and_track_metrics_on_empty_and_nan():
    assert psnr(np.zeros((0, 3, 4, 4)), np.zeros((0, 3, 4, 4))).shape == (0,)
    assert np.isnan(psnr(np.full((3, 4, 4), np.nan), np.zeros((3, 4, 4))))
    assert math.isnan(temporal_flickering(np.zeros((1, 3, 4, 4))))
    assert math.isnan(track_epe(np.zeros((0, 2)), np.zeros((0, 2)), np.zeros(0, bool)))


def _rotation(deg):
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def test_zero_translation_pairs_are_scored_by_rotation_alone():
    """A pure rotation has no translation direction: a perfect estimate used to score NaN and AUC 0."""
    T = np.eye(4)
    T[:3, :3] = _rotation(10)
    t_err, r_err = relative_pose_error(T, _rotation(10), np.array([1.0, 0, 0]))
    assert math.isnan(t_err) and r_err == pytest.approx(0.0, abs=1e-6)
    # exact matches of a pure rotation: points at infinity seen by both cameras
    rng = np.random.default_rng(0)
    K = np.array([[60.0, 0, 31.5], [0, 60.0, 31.5], [0, 0, 1]])
    x0 = rng.uniform(5, 58, (50, 2))
    rays = np.c_[x0, np.ones(50)] @ np.linalg.inv(K).T
    p1 = rays @ _rotation(10).T @ K.T
    x1 = p1[:, :2] / p1[:, 2:]
    R, inliers = estimate_rotation(x0, x1, K, K)
    assert angle_error_mat(R, _rotation(10)) < 0.01 and inliers.all()
    w2c0 = np.eye(4)[None]
    errors = pose_errors([(x0, x1)], w2c0, T[None], K[None], K[None])
    assert errors[0] < 0.01 and pose_auc(errors)[0] > 0.99 and rotation_only_steps(w2c0, T[None]).all()


@pytest.mark.parametrize("name", ["sift", "xfeat"])
def test_blank_frames_give_no_matches_not_a_crash(name):
    blank = np.zeros((2, 32, 32, 3), np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, blank.shape, dtype=np.uint8)
    m = get_matcher(name)
    assert mat_pix(blank, noise, m) == 0.0  # XFeat used to raise IndexError on an all-black frame
    eye = np.tile(np.eye(4), (2, 1, 1))
    K = np.tile(np.diag([30.0, 30.0, 1.0]), (2, 1, 1))
    assert np.isinf(pose_errors(match_videos(blank, blank, m), eye, eye, K, K)).all()


# --------------------------------------------------------------------------------------------------------------
# Issue 24: the library functions users score their own systems with validate shapes and finiteness and name the
# argument that is wrong.


@pytest.mark.parametrize("errors,thresholds,needle", [
    ([float("nan")] * 3, (5, 10, 20), "errors: 3 of 3 are NaN"),
    (np.array([[0.5, np.nan]]), (5,), "errors: 1 of 2 are NaN (first at index 1)"),
    ([1.0], (0,), "thresholds: expected finite angles > 0"),
    ([1.0], (5, float("inf")), "thresholds"),
    ([1.0], (-5,), "thresholds"),
    (["a"], (5,), "errors, thresholds: expected numbers"),
])
def test_pose_auc_names_the_bad_argument(errors, thresholds, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        pose_auc(errors, thresholds)


def test_matched_pose_errors_never_hand_pose_auc_a_nan():
    """The evaluation's own errors count an unmeasurable pair as a failure (inf), as before."""
    T = np.eye(4)
    T[:3, 3] = [1.0, 0, 0]
    errors = pose_errors([(np.zeros((0, 2)), np.zeros((0, 2)))], np.eye(4)[None], T[None], np.eye(3)[None],
                         np.eye(3)[None])
    assert errors.tolist() == [float("inf")] and pose_auc(errors) == [0.0, 0.0, 0.0]


def _tracks(N=3, T=4):
    rng = np.random.default_rng(0)
    return (np.c_[np.zeros(N), rng.uniform(0, 9, (N, 2))], np.zeros((N, T), bool), rng.uniform(0, 9, (N, T, 2)))


@pytest.mark.parametrize("break_it,needle", [
    (lambda q, o, t: (q, o[:, 0], t, o[:, 0], t), "gt_occluded: expected (N, T)"),  # 1-D occlusion: used to unpack
    (lambda q, o, t: (q, o, t, o[0], t), "pred_occluded: expected (3, 4), got (4,)"),
    (lambda q, o, t: (q, o, t, o, t[..., :1]), "pred_tracks: expected (3, 4, 2)"),
    (lambda q, o, t: (q[:, :2], o, t, o, t), "query_points: expected (B, N, 3) or (N, 3)"),
    (lambda q, o, t: (q[0], o, t, o, t), "query_points"),
    (lambda q, o, t: (q, o.astype(float) + 0.5, t, o, t), "gt_occluded: expected booleans"),
    (lambda q, o, t: (q, o, np.where(o[..., None], t, np.nan), o, t), "gt_tracks: NaN or inf positions"),
    (lambda q, o, t: (q, o, t, o.astype(str), t), "pred_occluded: expected numbers"),
])
def test_tapvid_metrics_names_the_bad_argument(break_it, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        tapvid_metrics(*break_it(*_tracks()))


def test_tapvid_metrics_accepts_integer_occlusion_and_checks_image_size():
    q, o, t = _tracks()
    assert tapvid_metrics(q, o.astype(np.uint8), t, o.astype(int), t)["average_jaccard"] == 1.0
    for size in ((0, 64), (64,), (float("nan"), 64)):
        with pytest.raises(ValueError, match="image_size"):
            tapvid_metrics(q, o, t, o, t, image_size=size)


@pytest.mark.parametrize("args,needle", [
    ((np.zeros((3, 2)), np.zeros((3, 2)), np.ones(4, bool)), "gt_visible: expected (3,)"),  # used to IndexError
    ((np.zeros((3, 2)), np.zeros((4, 2)), np.ones(3, bool)), "pred_tracks, gt_tracks"),
    ((np.zeros((3, 2)), np.full((3, 2), np.inf), np.ones(3, bool)), "gt_tracks: NaN or inf"),
])
def test_track_epe_names_the_bad_argument(args, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        track_epe(*args)


def _poses(T=3):
    out = np.repeat(np.eye(4)[None], T, 0)
    out[:, :3, :3] = [_rotation(d) for d in np.linspace(0, 20, T)]
    out[:, 0, 3] = np.linspace(0, 1, T)
    return out


@pytest.mark.parametrize("break_it,needle", [
    (lambda p: p * 0, "pose 0 is not a rigid transform"),  # all zeros: used to score 0 against itself
    (lambda p: p * np.diag([2.0, 1, 1, 1]), "pose 0 is not a rigid transform"),  # a scaled rotation
    (lambda p: p @ np.diag([1.0, 1, -1, 1]), "det(R) = -1"),  # a mirror
    (lambda p: np.concatenate([p[:2], p[2:] + np.array([[0, 0, 0, 0]] * 3 + [[0, 0, 0.5, 0]])]), "pose 2"),
])
@pytest.mark.parametrize("side", ["c2w_gen", "c2w_gt"])
def test_camera_errors_refuses_non_rigid_poses_naming_the_argument(break_it, needle, side):
    good, bad = _poses(), break_it(_poses())
    args = (bad, good) if side == "c2w_gen" else (good, bad)
    with pytest.raises(ValueError, match=f"{side}: .*" + re.escape(needle)):
        camera_errors(*args)
    assert camera_errors(good, good)["RotErr"] == pytest.approx(0.0, abs=1e-7)
    assert math.isnan(camera_errors(good, np.where(np.eye(4, dtype=bool), np.nan, good))["CamMC"])  # unregistered
