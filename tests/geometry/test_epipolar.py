import cv2
import numpy as np
import torch

from mvtrack.geometry import (
    apply_homography,
    epipolar_distance,
    epipolar_lines,
    fundamental_matrix,
    plane_homography,
    point_line_distance,
    project,
    relative_pose,
    rotation_homography,
)
from mvtrack.geometry.epipolar import to_homogeneous


def test_fundamental_matches_opencv_on_exact_correspondences(two_cameras, random_points):
    w2c, K = two_cameras
    x1, _ = project(random_points, w2c[0], K[0])
    x2, _ = project(random_points, w2c[1], K[1])
    F = fundamental_matrix(w2c[0], K[0], w2c[1], K[1])
    residual = (to_homogeneous(x2) * (to_homogeneous(x1) @ F.T)).sum(-1)
    assert residual.abs().max() < 1e-9
    F_cv, _ = cv2.findFundamentalMat(x1.numpy(), x2.numpy(), cv2.FM_8POINT)
    F_cv = F_cv / np.linalg.norm(F_cv)
    F_np = F.numpy()
    sign = np.sign((F_cv * F_np).sum())
    np.testing.assert_allclose(sign * F_cv, F_np, atol=1e-6)


def test_epipolar_distance_is_pixel_distance(two_cameras, random_points):
    w2c, K = two_cameras
    x1, _ = project(random_points, w2c[0], K[0])
    x2, _ = project(random_points, w2c[1], K[1])
    F = fundamental_matrix(w2c[0], K[0], w2c[1], K[1])
    assert epipolar_distance(F, x1, x2).max() < 1e-9
    lines = epipolar_lines(F, x1)
    torch.testing.assert_close(lines[:, :2].norm(dim=-1), torch.ones(len(x1), dtype=torch.float64))
    # Moving x2 along the line normal by 3 px gives a distance of exactly 3.
    moved = x2 + 3.0 * lines[:, :2]
    torch.testing.assert_close(point_line_distance(moved, lines), torch.full((len(x1),), 3.0, dtype=torch.float64))


def test_triangulation_recovers_points(two_cameras, random_points):
    w2c, K = two_cameras
    x1, _ = project(random_points, w2c[0], K[0])
    x2, _ = project(random_points, w2c[1], K[1])
    P1 = (K[0] @ w2c[0, :3]).numpy()
    P2 = (K[1] @ w2c[1, :3]).numpy()
    X = cv2.triangulatePoints(P1, P2, x1.numpy().T, x2.numpy().T)
    np.testing.assert_allclose((X[:3] / X[3]).T, random_points.numpy(), atol=1e-8)


def test_plane_homography_maps_plane_points(two_cameras):
    w2c, K = two_cameras
    g = torch.Generator().manual_seed(3)
    pts = torch.rand(20, 3, generator=g, dtype=torch.float64)
    normal = torch.tensor([0.2, -0.3, 1.0], dtype=torch.float64)
    normal = normal / normal.norm()
    offset = 0.4
    pts = pts - ((pts @ normal) - offset)[:, None] * normal  # project onto n . X = d
    x1, _ = project(pts, w2c[0], K[0])
    x2, _ = project(pts, w2c[1], K[1])
    H = plane_homography(w2c[0], K[0], w2c[1], K[1], normal, offset)
    torch.testing.assert_close(apply_homography(H, x1), x2, atol=1e-8, rtol=0)
    H_cv, _ = cv2.findHomography(x1.numpy(), x2.numpy(), 0)
    np.testing.assert_allclose(H_cv, H.numpy(), rtol=1e-5, atol=1e-4)  # OpenCV solves in float


def test_rotation_homography_for_shared_centre(two_cameras, random_points):
    w2c, K = two_cameras
    w2c_b = w2c[0].clone()
    R_delta = torch.tensor(cv2.Rodrigues(np.array([0.05, -0.1, 0.02]))[0])
    w2c_b[:3, :3] = R_delta @ w2c[0, :3, :3]
    w2c_b[:3, 3] = R_delta @ w2c[0, :3, 3]  # same centre
    x1, _ = project(random_points, w2c[0], K[0])
    x2, _ = project(random_points, w2c_b, K[1])
    H = rotation_homography(K[0], relative_pose(w2c[0], w2c_b)[:3, :3], K[1])
    torch.testing.assert_close(apply_homography(H, x1), x2, atol=1e-8, rtol=0)
