import math

import pytest
import torch

from mvtrack.geometry import (
    camera_centers,
    check_rotation,
    from_spec,
    interpolate,
    interpolate_poses,
    look_at,
    project,
    rotation_angle,
)
from mvtrack.geometry import trajectories as traj

CENTER = torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
START = look_at(torch.tensor([6.0, 0.0, 2.0], dtype=torch.float64), CENTER)
K = torch.tensor([[100.0, 0, 63.5], [0, 100.0, 63.5], [0, 0, 1]], dtype=torch.float64)


def _project_center(c2w):
    xy, _ = project(CENTER[None].expand(len(c2w), 1, 3), torch.linalg.inv(c2w), K.expand(len(c2w), 3, 3))
    return xy[:, 0]


def test_orbit_keeps_distance_and_target():
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    c2w = traj.orbit(START, 9, degrees=90, center=CENTER, up=up)
    check_rotation(c2w[:, :3, :3])
    d = (c2w[:, :3, 3] - CENTER).norm(dim=-1)
    torch.testing.assert_close(d, d[:1].expand_as(d))
    torch.testing.assert_close(_project_center(c2w), torch.full((9, 2), 63.5, dtype=torch.float64))
    torch.testing.assert_close(c2w[0], START)
    a, b = c2w[0, :2, 3], c2w[-1, :2, 3]
    assert math.isclose(math.degrees(math.acos(float(a @ b / (a.norm() * b.norm())))), 90, abs_tol=1e-6)
    assert (a[0] * b[1] - a[1] * b[0]) > 0  # counter-clockwise seen from above
    assert torch.allclose(c2w[:, 2, 3], START[2, 3].expand(9))  # height is kept


def test_arc_rises_and_keeps_target():
    c2w = traj.arc(START, 5, degrees=20, center=CENTER)
    assert (c2w[1:, 2, 3] > c2w[:-1, 2, 3]).all()
    torch.testing.assert_close(_project_center(c2w), torch.full((5, 2), 63.5, dtype=torch.float64))


def test_dolly_pan_tilt():
    d = traj.dolly(START, 3, distance=2.0)
    torch.testing.assert_close((d[-1, :3, 3] - d[0, :3, 3]), 2.0 * START[:3, 2])
    p = traj.pan(START, 3, degrees=10)
    torch.testing.assert_close(p[:, :3, 3], START[:3, 3].expand(3, 3))
    assert math.isclose(math.degrees(rotation_angle(START[:3, :3].T @ p[-1, :3, :3])), 10, abs_tol=1e-6)
    assert _project_center(p)[-1, 0] < 63.5  # turned right: the target moves left
    t = traj.tilt(START, 3, degrees=5)
    assert _project_center(t)[-1, 1] > 63.5  # looked up: the target moves down


def test_smooth_random_starts_at_start_and_is_bounded():
    g = torch.Generator().manual_seed(0)
    c2w = traj.smooth_random(START, 16, generator=g, max_translation=0.5, max_degrees=8)
    torch.testing.assert_close(c2w[0], START)
    assert (c2w[:, :3, 3] - START[:3, 3]).norm(dim=-1).max() <= 0.5 + 1e-9
    angles = torch.rad2deg(rotation_angle(START[:3, :3].T @ c2w[:, :3, :3]))
    assert angles.max() <= 8 + 1e-6
    steps = (c2w[1:, :3, 3] - c2w[:-1, :3, 3]).norm(dim=-1)
    assert steps.max() < 0.25  # smooth: no jumps


def test_interpolation():
    a = traj.static(START, 4)
    b = traj.orbit(START, 4, degrees=40, center=CENTER)
    torch.testing.assert_close(interpolate(a, b, 0.0), a)
    torch.testing.assert_close(interpolate(a, b, 1.0), b)
    end = look_at(torch.tensor([0.0, 6.0, 2.0], dtype=torch.float64), CENTER)
    path = interpolate_poses(START, end, 5)
    torch.testing.assert_close(path[0], START)
    torch.testing.assert_close(path[-1], end)
    check_rotation(path[:, :3, :3])
    torch.testing.assert_close(camera_centers(torch.linalg.inv(path))[2], (START[:3, 3] + end[:3, 3]) / 2)


def test_from_spec():
    c2w = from_spec("orbit:30", START, 4, center=CENTER)
    torch.testing.assert_close(c2w, traj.orbit(START, 4, 30.0, center=CENTER))
    torch.testing.assert_close(from_spec("dolly:-0.5", START, 3), traj.dolly(START, 3, -0.5))
    assert from_spec("static", START, 2).shape == (2, 4, 4)
    with pytest.raises(ValueError, match="unknown name 'spin'"):
        from_spec("spin:3", START, 2)
    with pytest.raises(ValueError, match="is not a number"):
        from_spec("orbit:far", START, 2)
    with pytest.raises(ValueError, match="num_frames"):
        traj.orbit(START, 0)
    with pytest.raises(ValueError, match="start_c2w"):
        traj.orbit(START * 2, 3)
