import math

import pytest
import torch

from mvtrack.data import PairedTracks, lift_tracks, oracle_tracks, paired_tracks, source_depth_tracks
from mvtrack.geometry import make_intrinsics
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


@pytest.fixture(scope="module")
def clips():
    config = SynthConfig(views=2, frames=4, height=48, width=48, num_tracks=512, query_view=0, baseline="small")
    return render_clips(config, [clip_seed(3, i) for i in range(2)])


def test_source_depth_tracks_match_the_engine_exact_tracks(clips):
    paired = source_depth_tracks(clips)
    src = paired.visible[:, 0]
    assert src.float().mean() > 0.6  # queried in view 0: most are seen there
    assert torch.allclose(paired.tracks[:, 0][src], clips.tracks[:, 0][src], atol=1e-3)
    both = paired.visible[:, 1] & clips.visible[:, 1]
    error = (paired.tracks[:, 1] - clips.tracks[:, 1]).norm(dim=-1)[both]
    assert error.median() < 0.1  # nearest-pixel depth is off only at silhouettes
    agree = (paired.visible[:, 1] == clips.visible[:, 1])[src].float().mean()
    assert agree > 0.9  # z-buffer visibility against the exact ray-cast test


def test_oracle_tracks_are_the_engine_tracks(clips):
    paired = oracle_tracks(clips)
    assert torch.equal(paired.tracks, clips.tracks)
    assert torch.equal(paired.visible, clips.visible & clips.visible[:, :1])
    assert (paired.depth[paired.visible] > 0).all()


def test_target_positions_follow_the_target_camera():
    # a point 5 m ahead of a camera at the origin; the target camera sits 1 m to its right (camera x axis)
    K = make_intrinsics(100.0, 100.0, 32.0, 32.0).reshape(1, 1, 1, 3, 3).expand(1, 2, 1, 3, 3)
    w2c = torch.eye(4).expand(1, 2, 1, 4, 4).clone()
    w2c[0, 1, 0, 0, 3] = -1.0  # camera centre at x = +1
    paired = paired_tracks(torch.tensor([[[[0.0, 0.0, 5.0]]]]), torch.ones(1, 1, 1, dtype=torch.bool), w2c, K, (64, 64))
    assert torch.allclose(paired.tracks[0, 0, 0, 0], torch.tensor([32.0, 32.0]))
    assert torch.allclose(paired.tracks[0, 1, 0, 0], torch.tensor([32.0 - 100.0 / 5.0, 32.0]))  # moves left
    assert paired.visible.all() and torch.allclose(paired.depth, torch.tensor(5.0))


def test_lift_tracks_refuses_unknown_depth():
    depth = torch.full((1, 1, 4, 4), 2.0)
    depth[0, 0, 1, 1] = float("nan")
    depth[0, 0, 2, 2] = -1.0
    tracks = torch.tensor([[[[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]]])
    K = make_intrinsics(4.0, 4.0, 1.5, 1.5).reshape(1, 1, 3, 3)
    points, known = lift_tracks(tracks, torch.ones(1, 1, 4, dtype=torch.bool), depth, torch.eye(4).reshape(1, 1, 4, 4), K)
    assert known.tolist() == [[[True, False, False, False]]]
    assert torch.allclose(points[0, 0, 0], torch.tensor([-0.75, -0.75, 2.0]))


def test_paired_tracks_check_their_shapes(clips):
    paired = source_depth_tracks(clips)
    with pytest.raises(ValueError, match="PairedTracks.depth"):
        PairedTracks(paired.tracks, paired.depth[..., :3], paired.visible)
    with pytest.raises(ValueError, match="source"):
        PairedTracks(paired.tracks, paired.depth, paired.visible, source=2)


def _two_cameras(T=1):
    """A source camera at the origin and a target camera 2 m ahead of it (both looking down +z), 64 x 64."""
    K = make_intrinsics(100.0, 100.0, 31.5, 31.5).reshape(1, 1, 1, 3, 3).expand(1, 2, T, 3, 3)
    w2c = torch.eye(4).expand(1, 2, T, 4, 4).clone()
    w2c[0, 1, :, 2, 3] = -2.0  # target centre at z = +2
    return w2c, K


def test_points_behind_or_at_a_target_camera_are_hidden_and_bounded():
    """Seen from the target, one point is behind (z = -1), one a hair in front of its centre (z = 1e-7): neither is
    visible there, and neither reaches the model as a huge position (unclamped: -3e3 and 3e9 pixels)."""
    w2c, K = _two_cameras()
    points = torch.tensor([[[[0.3, 0.2, 1.0], [0.3, 0.2, 2.0000001], [0.0, 0.0, 5.0]]]])  # (1, T, 3, 3)
    paired = paired_tracks(points, torch.ones(1, 1, 3, dtype=torch.bool), w2c, K, (64, 64))
    assert paired.visible[0, 0, 0].tolist() == [True, True, True]  # the source sees all three
    assert paired.visible[0, 1, 0].tolist() == [False, False, True]
    assert paired.tracks.abs().max() <= 2 * 64 and torch.isfinite(paired.tracks).all()
    assert paired.depth[0, 1, 0, :2].tolist() == [0.0, 0.0]  # no depth for points not in front
    model = _conditioned_model()
    inputs = {k: v for k, v in paired.model_inputs().items()}
    x, t, cam = _model_inputs(w2c, K)
    out = model(x, t, cam, **inputs).sample
    assert torch.isfinite(out).all()


def test_static_points_keep_their_origin_colour_weighted_by_the_nearness_of_its_camera():
    """Three source frames with centres at x = 0, 0.5, 1; the target camera sits at (1, -0.5, 0) in every frame.
    A static point is read from the frame it was lifted from at every target frame, weighted by
    exp(-(d / (2 d_min))^2) with d its origin camera's distance to the target camera (d_min = 0.5 here); a moving
    point reads its own frame, weight 1."""
    T = 3
    K = make_intrinsics(100.0, 100.0, 31.5, 31.5).reshape(1, 1, 1, 3, 3).expand(1, 2, T, 3, 3)
    w2c = torch.eye(4).expand(1, 2, T, 4, 4).clone()
    w2c[0, 0, :, 0, 3] = torch.tensor([0.0, -0.5, -1.0])  # source centres at x = 0, 0.5, 1
    w2c[0, 1, :, 0, 3], w2c[0, 1, :, 1, 3] = -1.0, 0.5  # target centre at (1, -0.5, 0)
    points = torch.tensor([[0.2, 0.0, 5.0], [0.1, 0.1, 5.0], [0.0, 0.2, 5.0]]).expand(1, T, 3, 3)
    known = torch.ones(1, T, 3, dtype=torch.bool)
    paired = paired_tracks(points, known, w2c, K, (64, 64), static=torch.tensor([[True, True, False]]),
                           origin=torch.tensor([[2, 0, 1]]))
    assert paired.source_frame[0, 1].tolist() == [[2, 0, 0], [2, 0, 1], [2, 0, 2]]
    expected = [math.exp(-0.25), math.exp(-1.25), 1.0]  # d = 0.5 and sqrt(1.25), in units of 2 d_min = 1
    for t in range(T):
        assert paired.weight[0, 1, t].tolist() == pytest.approx(expected, rel=1e-5)
    assert paired.source_frame[0, 0].tolist() == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]  # the source view reads itself
    assert (paired.weight[0, 0] == 1).all()
    kept = paired.select(frames=torch.tensor([1, 2]))  # frame 0 dropped: its colour falls back to the frame itself
    assert kept.source_frame[0, 1, :, 1].tolist() == [0, 1] and kept.source_frame[0, 1, :, 0].tolist() == [1, 1]


def test_carried_frames_read_each_static_point_from_its_colour_frame():
    from mvtrack.geometry import carry_frames

    frames = torch.stack([torch.full((1, 4, 4), float(f)) for f in range(3)])[None]  # (1, 3, 1, 4, 4): frame f = f
    xy = torch.tensor([1.0, 1.0]).expand(1, 3, 1, 2)
    seen = torch.tensor([True, True, False]).reshape(1, 3, 1)
    target = torch.ones(1, 3, 1, dtype=torch.bool)
    frame = torch.tensor([1, 1, 0]).reshape(1, 3, 1)
    total, mass, _ = carry_frames(frames, xy, seen, xy, target, frame)
    assert (total / mass.clamp_min(1e-6))[0, :, 0, 1, 1].tolist() == [1.0, 1.0, 0.0]
    total, mass, _ = carry_frames(frames, xy, seen, xy, target)  # same frame: frame 2 is not seen, nothing lands
    assert mass[0, :, 0, 1, 1].tolist() == [1.0, 1.0, 0.0]


def _conditioned_model():
    from mvtrack.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="sample",
                        track_conditioner=dict(blocks=[0], width=32, layers=1, heads=2, bands=3, skip=True))
    for proj in model.conditioner.block_proj.values():
        torch.nn.init.normal_(proj.weight, std=0.2)
    return model


def _model_inputs(w2c, K):
    from mvtrack.models import camera_condition

    x = torch.rand(1, 2, w2c.shape[2], 3, 64, 64) * 2 - 1
    t = torch.full((1, 2, w2c.shape[2]), 700.0)
    t[:, 0] = 0
    return x, t, camera_condition(w2c, K, (64, 64), (64, 64))
