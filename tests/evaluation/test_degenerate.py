"""Every metric on degenerate input (NaN, empty, T = 1, no matches, blank frames): NaN or a counted failure with a
reason, never a crash (issue 11), and the two library bugs of issue 13."""

import math

import numpy as np
import pytest

from mvtrack.evaluation import angle_error_mat, pose_auc, psnr, relative_pose_error, tapvid_metrics, temporal_flickering, track_epe
from mvtrack.evaluation.matching import get_matcher, mat_pix, match_videos, pose_errors, rotation_only_steps
from mvtrack.evaluation.pose import estimate_rotation


def test_pose_auc_rejects_negative_errors_and_counts_nan_as_failure():
    with pytest.raises(ValueError, match="errors: expected angles >= 0"):
        pose_auc([-1])  # used to give values above 1
    assert pose_auc([1, float("nan")], [5])[0] == pytest.approx(pose_auc([1, float("inf")], [5])[0])
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
