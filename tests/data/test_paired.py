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
