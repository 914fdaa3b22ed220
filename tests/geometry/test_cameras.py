import cv2
import numpy as np
import pytest
import torch

from mvtrack.geometry import (
    axis_angle_to_matrix,
    c2w_to_w2c,
    camera_centers,
    check_rotation,
    intrinsics_from_normalized,
    intrinsics_to_normalized,
    look_at,
    matrix_to_quaternion,
    opencv_to_opengl,
    opengl_to_opencv,
    project,
    quaternion_to_matrix,
    relative_pose,
    resize_intrinsics,
    unproject,
    unproject_depth_map,
    w2c_to_c2w,
)


def test_project_matches_opencv(two_cameras, random_points):
    w2c, K = two_cameras
    for v in range(2):
        xy, depth = project(random_points, w2c[v], K[v])
        rvec, _ = cv2.Rodrigues(w2c[v, :3, :3].numpy())
        ref, _ = cv2.projectPoints(random_points.numpy(), rvec, w2c[v, :3, 3].numpy(), K[v].numpy(), None)
        np.testing.assert_allclose(xy.numpy(), ref[:, 0], atol=1e-9)
        assert (depth > 0).all()


def test_unproject_inverts_project(two_cameras, random_points):
    w2c, K = two_cameras
    xy, depth = project(random_points, w2c[0], K[0])
    back = unproject(xy, depth, w2c[0], K[0])
    torch.testing.assert_close(back, random_points, atol=1e-10, rtol=0)


def test_unproject_depth_map_reprojects_to_pixel_centres(two_cameras):
    w2c, K = two_cameras
    depth = torch.full((6, 8), 3.0, dtype=torch.float64)
    pts = unproject_depth_map(depth, w2c[1], K[1])  # (6, 8, 3)
    xy, z = project(pts.reshape(-1, 3), w2c[1], K[1])
    assert torch.allclose(z, torch.tensor(3.0, dtype=torch.float64))
    assert torch.allclose(xy[9], torch.tensor([1.0, 1.0], dtype=torch.float64))  # row 1, col 1


def test_look_at_is_opencv(two_cameras):
    eye = torch.tensor([5.0, 0.0, 0.0], dtype=torch.float64)
    c2w = look_at(eye, torch.zeros(3, dtype=torch.float64))
    R = c2w[:3, :3]
    torch.testing.assert_close(R[:, 2], torch.tensor([-1.0, 0.0, 0.0], dtype=torch.float64))  # forward
    assert R[2, 1] < 0  # camera y (down) points to world -z
    check_rotation(R)
    # The target projects to the principal point.
    K = torch.tensor([[100.0, 0, 31.5], [0, 100.0, 31.5], [0, 0, 1]], dtype=torch.float64)
    xy, _ = project(torch.zeros(1, 3, dtype=torch.float64), torch.linalg.inv(c2w), K)
    torch.testing.assert_close(xy[0], torch.tensor([31.5, 31.5], dtype=torch.float64))


def test_w2c_c2w_round_trip_and_centres(two_cameras):
    w2c, _ = two_cameras
    c2w = w2c_to_c2w(w2c)
    torch.testing.assert_close(c2w, torch.linalg.inv(w2c))
    torch.testing.assert_close(c2w_to_w2c(c2w), w2c)
    torch.testing.assert_close(camera_centers(w2c), c2w[:, :3, 3])


def test_relative_pose_maps_camera_frames(two_cameras, random_points):
    w2c, _ = two_cameras
    T = relative_pose(w2c[0], w2c[1])
    p1 = random_points @ w2c[0, :3, :3].T + w2c[0, :3, 3]
    p2 = random_points @ w2c[1, :3, :3].T + w2c[1, :3, 3]
    torch.testing.assert_close(p1 @ T[:3, :3].T + T[:3, 3], p2)


def test_normalized_intrinsics_half_pixel():
    # The centre of a 64 x 48 image is pixel (31.5, 23.5) in our convention and (0.5, 0.5) normalised.
    K = torch.tensor([[50.0, 0, 31.5], [0, 60.0, 23.5], [0, 0, 1]])
    k = intrinsics_to_normalized(K, height=48, width=64)
    torch.testing.assert_close(k, torch.tensor([50 / 64, 60 / 48, 0.5, 0.5]))
    torch.testing.assert_close(intrinsics_from_normalized(k, 48, 64), K)
    with pytest.raises(ValueError, match="positive height"):
        intrinsics_from_normalized(k, 0, 64)


def test_resize_intrinsics_keeps_pixel_centres():
    # Downsampling 2x: pixel centres 0 and 1 average into new pixel 0, so old x = 0.5 is new x = 0.
    K = torch.tensor([[100.0, 0, 63.5], [0, 100.0, 63.5], [0, 0, 1]])
    K2 = resize_intrinsics(K, 0.5, 0.5)
    assert K2[0, 2] == 31.5 and K2[0, 0] == 50.0


def test_opengl_round_trip_flips_axes():
    c2w = look_at(torch.tensor([1.0, 2.0, 3.0]), torch.zeros(3))
    gl = opencv_to_opengl(c2w)
    torch.testing.assert_close(gl[:3, 2], -c2w[:3, 2])  # OpenGL looks down -z
    torch.testing.assert_close(gl[:3, 1], -c2w[:3, 1])  # and has y up
    torch.testing.assert_close(opengl_to_opencv(gl), c2w)


def test_check_rotation_rejects_bad_matrices():
    check_rotation(axis_angle_to_matrix(torch.tensor([0.3, 0.2, 1.0]), torch.tensor(0.7)))
    with pytest.raises(ValueError, match="rotation matrix"):
        check_rotation(torch.eye(3) * 2)
    with pytest.raises(ValueError, match="rotation matrix"):
        check_rotation(torch.diag(torch.tensor([1.0, 1.0, -1.0])))  # a reflection
    with pytest.raises(ValueError, match="NaN"):
        check_rotation(torch.full((3, 3), float("nan")))
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, 3\)"):
        check_rotation(torch.eye(4))


def test_quaternion_round_trip():
    g = torch.Generator().manual_seed(1)
    axes = torch.randn(100, 3, generator=g, dtype=torch.float64)
    angles = torch.rand(100, generator=g, dtype=torch.float64) * 3.1
    R = axis_angle_to_matrix(axes, angles)
    torch.testing.assert_close(quaternion_to_matrix(matrix_to_quaternion(R)), R)
    rvec = (axes[0] / axes[0].norm() * angles[0]).numpy()
    np.testing.assert_allclose(R[0].numpy(), cv2.Rodrigues(rvec)[0], atol=1e-12)
