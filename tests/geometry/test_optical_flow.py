import numpy as np
import pytest

from mvtrack.evaluation import tapvid_metrics
from mvtrack.geometry.optical_flow import flow_tracks
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames


@pytest.fixture(scope="module")
def clips():
    # Seeds 1 and 2 of this stream have an arc and a static camera over moving objects.
    return render_clips(SynthConfig(views=1, frames=8, height=128, width=128, num_tracks=128),
                        [clip_seed(2, 1), clip_seed(2, 2)])


def _score(queries, tracks, visible, gt, gt_visible):
    qp = np.stack([queries[:, 0], queries[:, 2], queries[:, 1]], -1)  # (t, x, y) -> TAP-Vid (t, y, x)
    return tapvid_metrics(qp, ~gt_visible.T, gt.transpose(1, 0, 2), ~visible.T, tracks.transpose(1, 0, 2), "strided",
                          image_size=(128, 128))


def test_flow_tracks_follow_the_ground_truth(clips):
    for clip in clips.unbatch():
        frames = to_uint8_frames(clip.video[0])
        queries = clip.queries[:, 1:].numpy()  # (t, x, y)
        gt, gt_vis = clip.tracks[0].numpy(), clip.visible[0].numpy()
        tracks, visible = flow_tracks(frames, queries)
        assert tracks.shape == gt.shape and visible.shape == gt_vis.shape
        t = np.round(queries[:, 0]).astype(int)
        np.testing.assert_array_equal(tracks[t, np.arange(len(t))], queries[:, 1:])  # tracks start at their query
        both = gt_vis & visible
        assert np.median(np.linalg.norm(tracks - gt, axis=-1)[both]) < 1.0
        # Far better than assuming nothing moves.
        still = np.broadcast_to(queries[None, :, 1:], gt.shape)
        ours = _score(queries, tracks, visible, gt, gt_vis)
        baseline = _score(queries, still, np.ones_like(visible), gt, gt_vis)
        assert ours["average_pts_within_thresh"] > baseline["average_pts_within_thresh"] + 0.05
        assert ours["average_jaccard"] > 0.4


def test_still_video_gives_still_tracks():
    rng = np.random.default_rng(0)
    frame = (rng.random((1, 48, 64, 3)) * 255).astype(np.uint8)
    frame = np.repeat(frame, 4, 0)
    queries = np.array([[0, 10.0, 20.0], [2, 30.5, 7.25]])
    tracks, visible = flow_tracks(frame, queries)
    np.testing.assert_allclose(tracks, np.broadcast_to(queries[None, :, 1:], (4, 2, 2)), atol=0.05)
    assert visible.all()
    with pytest.raises(ValueError, match="uint8"):
        flow_tracks(frame.astype(np.float32), queries)
