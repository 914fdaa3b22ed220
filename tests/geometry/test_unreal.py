"""MultiCamVideo's Unreal cameras to OpenCV: exact on analytic cases, ReCamMaster's relative poses, round trips."""

import numpy as np
import pytest
import torch

from mvtrack.geometry import invert_rigid, look_at, project
from mvtrack.geometry.unreal import intrinsics_from_sensor, opencv_to_unreal, unreal_to_opencv


def unreal(forward, right, up, location_cm):
    """The row-vector matrix MultiCamVideo writes for a camera with these world axes and location."""
    m = torch.zeros(4, 4, dtype=torch.float64)
    rows = (forward, right, up, location_cm)
    m[0, :3], m[1, :3], m[2, :3], m[3, :3] = (torch.tensor(v, dtype=torch.float64) for v in rows)
    m[3, 3] = 1
    return m


def test_unreal_axes_become_opencv_axes_exactly():
    # an unrotated Unreal camera at (100, -250, 300) cm: forward is world x, right is Unreal's y, up is z
    w2c = unreal_to_opencv(unreal((1, 0, 0), (0, 1, 0), (0, 0, 1), (100, -250, 300)))
    expected_c2w = torch.tensor([[0.0, 0, 1, 1], [-1, 0, 0, 2.5], [0, -1, 0, 3], [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.equal(w2c, invert_rigid(expected_c2w))  # world: x forward, y left (Unreal's -y), z up, metres
    # what the camera sees: 5 m ahead is on the optical axis, Unreal's right is image right (+x), up is image up (-y)
    centre_ue = torch.tensor([100.0, -250.0, 300.0])
    def seen(offset_cm):
        p_ue = centre_ue + torch.tensor(offset_cm)
        p = torch.stack([p_ue[0], -p_ue[1], p_ue[2]]).double() / 100  # the same point in the right-handed world
        return (w2c[:3, :3] @ p + w2c[:3, 3]).tolist()
    assert seen([500.0, 0, 0]) == pytest.approx([0, 0, 5])
    assert seen([500.0, 100, 0]) == pytest.approx([1, 0, 5])
    assert seen([500.0, 0, 100]) == pytest.approx([0, -1, 5])


def test_recammaster_pan_right_turns_the_camera_right():
    # frame 1 of cam01 ("Pan Right", cam_type 1) in ReCamMaster's example_test_data/cameras/camera_extrinsics.json
    start = unreal((1, 0, 0), (-0.0, 1, 0), (0, -0.0, 1), (3390, 1380, 240))
    panned = unreal((0.999991, 0.00433621, 0), (-0.00433621, 0.999991, 0), (0, -0, 1), (3390, 1380, 240))
    w2c = unreal_to_opencv(torch.stack([start, panned]))
    K = intrinsics_from_sensor(24.0, 1280, 1280)
    ahead = torch.tensor([[33.90 + 10, -13.80, 2.40]], dtype=torch.float64)  # 10 m straight ahead of the start
    xy, _ = project(ahead, w2c, K.expand(2, 3, 3))
    assert xy[0, 0, 0] == pytest.approx(639.5) and xy[1, 0, 0] < 639.5 - 1  # turning right moves it left
    assert torch.linalg.det(w2c[:, :3, :3]) == pytest.approx(torch.ones(2, dtype=torch.float64))


def recammaster_relative_c2w(strings_ref, strings):
    """ReCamMaster's own recipe (train_recammaster.py: transpose, columns [1, 2, 0], negate column 1, cm -> m, poses
    relative to the reference camera), written independently in numpy."""
    def c2w(m):
        c = m.T[:, [1, 2, 0, 3]].copy()
        c[:3, 1] *= -1.0
        c[:3, 3] /= 100
        return c
    ref = np.linalg.inv(c2w(strings_ref))
    return np.stack([ref @ c2w(m) for m in strings])


def test_relative_poses_are_recammasters():
    g = torch.Generator().manual_seed(0)
    eyes = torch.randn(5, 3, generator=g, dtype=torch.float64) * 3
    w2c = torch.linalg.inv(look_at(eyes, torch.randn(5, 3, generator=g, dtype=torch.float64)))
    m = opencv_to_unreal(w2c)
    ours = unreal_to_opencv(m)
    theirs = recammaster_relative_c2w(m[0].numpy(), m.numpy())
    np.testing.assert_allclose((ours[0] @ invert_rigid(ours)).numpy(), theirs, atol=1e-12)  # w2c_ref c2w_i


def test_round_trip_of_opencv_cameras(two_cameras):
    w2c, _ = two_cameras
    m = opencv_to_unreal(w2c)
    assert torch.allclose(m[:, :, 3], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64))
    assert torch.linalg.det(m[:, :3, :3]).sub(1).abs().max() < 1e-12  # a proper rotation in Unreal's numbers
    torch.testing.assert_close(unreal_to_opencv(m), w2c, atol=1e-12, rtol=0)


def test_bad_matrices_are_one_line_errors():
    good = unreal((1, 0, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0))
    bad = good.clone()
    bad[0, 3] = 1
    with pytest.raises(ValueError, match=r"cams.json frame3/cam01: expected a last column of \(0, 0, 0, 1\)"):
        unreal_to_opencv(bad, name="cams.json frame3/cam01")
    mirrored = unreal((1, 0, 0), (0, -1, 0), (0, 0, 1), (0, 0, 0))
    with pytest.raises(ValueError, match="x.json rotation rows: expected a rotation matrix"):
        unreal_to_opencv(mirrored, name="x.json")
    with pytest.raises(ValueError, match="expected positive focal length"):
        intrinsics_from_sensor(0.0, 10, 10)


def test_sensor_intrinsics_follow_the_folder_focal_length():
    K = intrinsics_from_sensor(18.0, 1280, 1280)
    assert K[0, 0].item() == pytest.approx(18 / 23.76 * 1280) and K[1, 1].item() == pytest.approx(18 / 23.76 * 1280)
    assert K[:2, 2].tolist() == [639.5, 639.5]
