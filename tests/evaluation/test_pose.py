import math

import numpy as np
import pytest
import torch

from mvtrack.evaluation import angle_error_mat, camera_errors, estimate_pose, pose_auc, relative_pose_error
from mvtrack.evaluation.pose import estimate_rotation
from mvtrack.geometry import axis_angle_to_matrix, look_at, project, relative_pose
from mvtrack.geometry import trajectories as traj


def test_pose_auc_by_hand():
    assert pose_auc([1, 3], [5])[0] == pytest.approx(0.75)
    assert pose_auc([1, 3], [10])[0] == pytest.approx(0.875)  # (0.25 + 1.5 + 7) / 10
    assert pose_auc([5, 6], [5])[0] == 0.0  # errors at the threshold are not below it
    assert pose_auc([0.0, float("inf")], [5])[0] == pytest.approx(0.5)


# SIFT matches of two 48 px frames of the bench's tiny split (K-normalised; rows x0, y0, x1, y1): five points of
# image 1 are matched from several points of image 0. On an AMD EPYC machine OpenCV 5's RANSAC drew a minimal sample
# holding two of them and its five-point solver raised (``solvePoly``), so the view was skipped as "scoring failed".
MANY_TO_ONE = np.array([
    [-0.291019, -0.193857, 0.307629, -0.125859], [-0.200907, 0.028574, -0.301955, -0.103123],
    [-0.180469, -0.227512, 0.307629, -0.125859], [-0.174461, 0.027664, -0.288827, -0.102014],
    [-0.174461, 0.027664, -0.288827, -0.102014], [-0.136842, -0.192945, 0.307629, -0.125859],
    [-0.126997, -0.234552, 0.319983, -0.088539], [-0.091439, -0.066688, 0.037714, -0.08305],
    [-0.074824, 0.007429, -0.16339, -0.10222], [-0.022487, 0.046193, -0.124239, -0.074325],
    [-0.017061, -0.058117, -0.000157, -0.065941], [0.003615, 0.051548, -0.066778, -0.075999],
    [0.020173, -0.333455, -0.153604, -0.152395], [0.033485, 0.068963, -0.066778, -0.075999],
    [0.114526, -0.104455, 0.073611, -0.197418], [0.137749, -0.211099, 0.319983, -0.088539],
    [0.144559, -0.185881, 0.307629, -0.125859], [0.20453, -0.255626, 0.307629, -0.125859]])


def test_unique_matches_keep_one_of_each_pair_and_drop_shared_keypoints():
    from mvtrack.evaluation.pose import unique_matches

    assert unique_matches(MANY_TO_ONE[:, :2], MANY_TO_ONE[:, 2:]).tolist() == [1, 3, 7, 8, 9, 10, 12, 14]


def test_degenerate_matches_give_no_pose_instead_of_an_opencv_error():
    K = np.eye(3)
    R, t, inliers = estimate_pose(MANY_TO_ONE[:, :2], MANY_TO_ONE[:, 2:], K, K, thresh=1 / 150)
    assert R.shape == (3, 3) and inliers.shape == (18,) and not inliers[[0, 2, 4, 5]].any()
    line = np.c_[np.linspace(-0.5, 0.5, 12), np.zeros(12)]  # collinear: no essential matrix, no homography
    assert estimate_pose(line, line + [0.1, 0.0], K, K) is None
    points = np.random.default_rng(0).normal(size=(12, 2)) * 0.2
    assert estimate_pose(points, points, K, K) is None  # no motion at all: every sample is degenerate
    assert estimate_rotation(line, line, K, K) is None


def _rot(axis, degrees):
    return axis_angle_to_matrix(torch.tensor(axis, dtype=torch.float64), torch.tensor(math.radians(degrees))).numpy()


def _orbit(T=16):
    start = look_at(torch.tensor([5.0, 0.0, 2.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    return traj.orbit(start, T, degrees=60, center=torch.zeros(3, dtype=torch.float64)).numpy()


def test_rot_err_of_ten_degrees_on_fifteen_frames():
    gt = _orbit()
    gen = gt.copy()
    gen[1:, :3, :3] = gen[1:, :3, :3] @ _rot([0.3, 1.0, 0.2], 10)  # every frame after the first, 10 degrees off
    e = camera_errors(gen, gt)
    assert e["RotErr"] == pytest.approx(15 * math.radians(10), abs=1e-6)  # arccos of a float64 trace
    assert e["mRotErr"] == pytest.approx(math.radians(10), abs=1e-7)
    # Only rotations differ (relative translations R0^T (t_i - t_0) are untouched), and
    # |R_a - R_b|_F = 2 sqrt(2) sin(theta / 2) per frame.
    assert e["CamMC"] == pytest.approx(15 * 2 * math.sqrt(2) * math.sin(math.radians(5)), abs=1e-6)
    assert e["TransErr"] == pytest.approx(0.0, abs=1e-9)


def test_translation_normalisation():
    gt = np.tile(np.eye(4), (16, 1, 1))
    gt[:, 0, 3] = np.arange(16)
    gen = gt.copy()
    gen[:, 0, 3] *= 2  # same path, twice the scale
    assert camera_errors(gen, gt, "rel")["TransErr"] == pytest.approx(0.0, abs=1e-7)
    assert camera_errors(gen, gt, "none")["TransErr"] == pytest.approx(120.0)  # sum of i for i < 16
    assert camera_errors(gen, gt, "gt")["TransErr"] == pytest.approx(120.0 / 15)
    assert camera_errors(gt, gt)["CamMC"] == 0.0
    with pytest.raises(ValueError, match="normalization"):
        camera_errors(gen, gt, "max")
    assert all(np.isnan(v) for v in camera_errors(gen * np.nan, gt).values())  # a missing pose: NaN, no crash
    assert all(np.isnan(v) for v in camera_errors(gen[:1], gt[:1]).values())  # T = 1: no frame after the first


def test_estimate_pose_recovers_the_relative_pose():
    g = torch.Generator().manual_seed(0)
    pts = (torch.rand(200, 3, generator=g, dtype=torch.float64) - 0.5) * 3
    w2c0 = torch.linalg.inv(look_at(torch.tensor([5.0, 1.0, 1.5], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    w2c1 = torch.linalg.inv(look_at(torch.tensor([4.0, 3.0, 2.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64)))
    K = torch.tensor([[120.0, 0, 63.5], [0, 118.0, 63.5], [0, 0, 1]], dtype=torch.float64)
    x0, _ = project(pts, w2c0, K)
    x1, _ = project(pts, w2c1, K)
    R, t, inliers = estimate_pose(x0.numpy(), x1.numpy(), K.numpy(), K.numpy(), thresh=0.5)
    T = relative_pose(w2c0, w2c1).numpy()
    t_err, R_err = relative_pose_error(T, R, t)
    assert R_err < 0.01 and t_err < 0.05 and inliers.mean() > 0.95
    assert relative_pose_error(T, None, None) == (math.inf, math.inf)
    assert estimate_pose(x0[:4].numpy(), x1[:4].numpy(), K.numpy(), K.numpy()) is None
    assert angle_error_mat(np.eye(3), _rot([0, 0, 1], 30)) == pytest.approx(30)
