import numpy as np
import pytest
import torch

from mvtrack.geometry import look_at, make_intrinsics, project, triangulate_tracks

T, N = 8, 120


def _cameras(eyes, targets):
    w2c = torch.linalg.inv(look_at(eyes.double(), targets.double()))
    K = make_intrinsics(torch.tensor(100.0), torch.tensor(104.0), torch.tensor(63.5), torch.tensor(47.5)).double()
    return w2c, K.expand(len(eyes), 3, 3).clone()


@pytest.fixture
def scene():
    """Points in a unit cube seen by a camera sliding 2 units sideways while looking at the origin."""
    g = torch.Generator().manual_seed(0)
    points = (torch.rand(N, 3, generator=g, dtype=torch.float64) - 0.5) * 2
    eyes = torch.stack([torch.linspace(-1, 1, T), torch.full((T,), -6.0), torch.full((T,), 1.0)], -1)
    w2c, K = _cameras(eyes, torch.zeros(T, 3))
    return points, w2c, K


def test_static_points_are_recovered(scene):
    points, w2c, K = scene
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)  # (T, N, 2)
    visible = torch.ones(T, N, dtype=torch.bool)
    visible[:3, ::2] = False  # every other track seen only in the last 5 frames
    xy[~visible] = 1e6  # what an unseen frame holds must not matter
    result = triangulate_tracks(xy, visible, w2c, K)
    assert result.static.all() and result.counts() == {"static": N, "dynamic": 0, "untriangulable": 0}
    assert result.residual.max() < 0.1
    torch.testing.assert_close(result.points, points, atol=1e-6, rtol=0)
    assert (result.num_views[::2] == 5).all() and (result.parallax > 8).all()


def test_numpy_inputs_give_the_same_answer(scene):
    points, w2c, K = scene
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)
    visible = torch.ones(T, N, dtype=torch.bool)
    a = triangulate_tracks(xy, visible, w2c, K)
    b = triangulate_tracks(xy.numpy(), visible.numpy(), w2c.numpy(), K.numpy())
    torch.testing.assert_close(a.points, b.points)


def test_moving_points_are_flagged_not_triangulated(scene):
    points, w2c, K = scene
    world = points[None].repeat(T, 1, 1)  # (T, N, 3)
    moving = torch.arange(N) < 40
    world[:, moving, 2] += torch.linspace(0, 0.5, T, dtype=torch.float64)[:, None]  # rise 0.5 while the camera moves
    xy, _ = project(world, w2c, K)
    result = triangulate_tracks(xy, torch.ones(T, N, dtype=torch.bool), w2c, K)
    assert not result.static[moving].any() and result.static[~moving].all()
    assert result.dynamic[moving].float().mean() >= 0.9  # the rest land behind a camera: untriangulable
    assert (result.residual[result.dynamic] > 0.5).all()
    assert torch.isnan(result.points[moving]).all()


def test_noise_stays_static_within_the_residual_threshold(scene):
    points, w2c, K = scene
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)
    noisy = xy + 0.1 * torch.randn(xy.shape, generator=torch.Generator().manual_seed(1), dtype=xy.dtype)
    result = triangulate_tracks(noisy, torch.ones(T, N, dtype=torch.bool), w2c, K)
    # RMS over 8 frames of 2D noise (0.1 px per axis) less the 3 fitted degrees of freedom: 0.1 sqrt(13 / 8)
    assert result.static.all() and result.residual.median() == pytest.approx(0.1 * (13 / 8) ** 0.5, rel=0.1)
    assert (result.points - points).norm(dim=-1).median() < 0.05  # the cube is 2 units wide, 6 away


def test_pure_rotation_is_untriangulable(scene):
    points, _, K = scene
    targets = torch.stack([torch.linspace(-1, 1, T), torch.zeros(T), torch.zeros(T)], -1)
    w2c, _ = _cameras(torch.tensor([0.0, -6.0, 1.0]).expand(T, 3), targets)  # one centre, turning
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)
    result = triangulate_tracks(xy, torch.ones(T, N, dtype=torch.bool), w2c, K)
    assert not result.triangulable.any() and not result.static.any()
    assert torch.isnan(result.points).all() and torch.isnan(result.residual).all()
    assert result.parallax.max() < 1e-3


def test_too_few_views_are_untriangulable(scene):
    points, w2c, K = scene
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)
    visible = torch.zeros(T, N, dtype=torch.bool)
    visible[[0, -1]] = True  # wide baseline, but two views cannot tell a static point from a moving one
    assert not triangulate_tracks(xy, visible, w2c, K).triangulable.any()
    result = triangulate_tracks(xy, visible, w2c, K, min_views=2)
    assert result.static.all() and result.residual.max() < 0.1


def test_wrong_shapes_are_value_errors(scene):
    points, w2c, K = scene
    xy, _ = project(points[None].expand(T, N, 3), w2c, K)
    visible = torch.ones(T, N, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"tracks expected \(T, N, 2\)"):
        triangulate_tracks(xy[..., :1], visible, w2c, K)
    with pytest.raises(ValueError, match="visible expected"):
        triangulate_tracks(xy, visible[:, :5], w2c, K)
    with pytest.raises(ValueError, match="w2c and K expected"):
        triangulate_tracks(xy, visible, w2c[:-1], K)
    with pytest.raises(ValueError, match="w2c and K expected"):
        triangulate_tracks(xy, visible, w2c, K[..., :2])
    with pytest.raises(ValueError, match="min_views"):
        triangulate_tracks(xy, visible, w2c, K, min_views=1)
    with pytest.raises(ValueError, match="torch tensor or numpy array"):
        triangulate_tracks(xy.tolist(), visible, w2c, K)
    assert isinstance(np.asarray(triangulate_tracks(xy, visible, w2c, K).points), np.ndarray)


def test_a_point_at_a_camera_centre_has_no_parallax():
    """Seen from one centre, the DLT may return that centre itself (which one of its null vectors depends on the
    processor's kernels): a point with no ray has parallax 0, whatever angle its zero-length rays would give."""
    from mvtrack.geometry.triangulate import _parallax

    centers = torch.tensor([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    points = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.0, 10.0], [3.0, 4.0, 0.0]], dtype=torch.float64)
    seen = torch.ones(3, 3, dtype=torch.bool)
    seen[1, 2] = False  # the third point is seen from the origin only (twice)
    parallax, at_centre = _parallax(points, centers, seen)
    assert at_centre.tolist() == [True, False, False]
    assert parallax[0] == 0 and parallax[2] < 1e-12  # one centre: the same ray twice
    assert parallax[1].item() == pytest.approx(2 * np.arctan(0.5 / 10), rel=1e-12)  # both rays 10 deep, 1 apart
