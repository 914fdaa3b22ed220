import math

import numpy as np
import pytest

from mvtrack.evaluation import cross_view_track_consistency, track_pair_scores
from mvtrack.evaluation.cross_view import cross_view_queries
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

STEREO_F = np.array([[0.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rectified stereo: epipolar lines are rows, y_b = y_a


def _stereo(T=3, N=2):
    """Tracks of N points over T frames in view a, the same rows in view b (on their epipolar lines)."""
    t, n = np.meshgrid(np.arange(T), np.arange(N), indexing="ij")
    a = np.stack([10.0 + t + 5 * n, 4.0 + 3 * n], -1)  # (T, N, 2): moving along the rows
    b = a + np.array([-6.0, 0.0])  # disparity along the row: consistent
    return a, b, np.ones((T, N), bool), np.repeat(STEREO_F[None], T, 0)


def test_points_on_their_epipolar_lines_score_zero_and_an_offset_scores_it():
    a, b, vis, F = _stereo()
    q = np.zeros(2, int)
    on = track_pair_scores(a, vis, b, vis, vis, vis, q, F)
    assert on["median_px"] == 0.0 and on["frac_1px"] == 1.0 and on["tracked"] == 1.0
    assert on["points"] == 4  # 2 frames x 2 points: the query frame (given positions) is not scored
    b_off = b.copy()
    b_off[1:, :, 1] += 2.0  # 2 px across the rows after the query frame: 2 / sqrt(2) (shared by both points)
    off = track_pair_scores(a, vis, b_off, vis, vis, vis, q, F)
    assert off["median_px"] == pytest.approx(math.sqrt(2)) and off["frac_1px"] == 0.0 and off["frac_2px"] == 1.0


def test_lost_points_count_as_failures_and_hidden_points_are_not_scored():
    a, b, vis, F = _stereo(T=3, N=2)
    alive_b = vis.copy()
    alive_b[2, 1] = False  # the tracker lost point 1 at frame 2 in view b
    gt_b = vis.copy()
    gt_b[1, 0] = False  # point 0 hidden in view b at frame 1: nothing to score there
    s = track_pair_scores(a, vis, b, alive_b, vis, gt_b, np.zeros(2, int), F)
    assert s["points"] == 3 and s["tracked"] == pytest.approx(2 / 3)
    assert s["frac_1px"] == pytest.approx(2 / 3) and s["median_px"] == 0.0  # median over the tracked entries
    np.testing.assert_array_equal(cross_view_queries(vis, gt_b), [0, 0])
    np.testing.assert_array_equal(cross_view_queries(vis & [[False], [True], [True]], np.zeros_like(vis)), [-1, -1])
    none = track_pair_scores(a, vis, b, vis, vis, vis, np.full(2, -1), F)
    assert math.isnan(none["median_px"]) and none["points"] == 0 and "no point" in none["reason"]


@pytest.fixture(scope="module")
def clip():
    cfg = SynthConfig(views=2, frames=4, height=64, width=64, num_tracks=64, baseline="wide", dynamic_prob=0.0,
                      camera_motions=("arc",))
    c = render_clips(cfg, [clip_seed(0, 0, "test")])[0]
    video = (c.video.numpy().transpose(0, 1, 3, 4, 2) * 255).round().clip(0, 255).astype(np.uint8)  # (V, T, H, W, 3)
    return (video, c.tracks.double().numpy(), c.visible.numpy().astype(bool), c.w2c.double().numpy(),
            c.K.double().numpy())


def _score(clip, **changes):
    video, tracks, vis, w2c, K = clip
    args = dict(video_a=video[0], video_b=video[1], gt_tracks_a=tracks[0], gt_visible_a=vis[0],
                gt_tracks_b=tracks[1], gt_visible_b=vis[1], w2c_a=w2c[0], K_a=K[0], w2c_b=w2c[1], K_b=K[1])
    return cross_view_track_consistency(**{**args, **changes})


def test_ground_truth_videos_score_near_zero_and_a_copy_of_view_0_badly(clip):
    video = clip[0]
    gt = _score(clip)
    copy = _score(clip, video_b=video[0])
    assert gt["points"] > 50 and gt["median_px"] < 0.5 and gt["frac_1px"] > 0.8
    assert copy["median_px"] > 2 * gt["median_px"] and copy["frac_1px"] < gt["frac_1px"] - 0.15


@pytest.mark.parametrize("case, reason", [
    ("t1", "fewer than 2 frames"), ("nan", "NaN"), ("blank", "blank video"), ("same_camera", "no baseline"),
    ("hidden", "no ground-truth track"),
])
def test_degenerate_inputs_return_nan_with_a_reason(clip, case, reason):
    video, tracks, vis, w2c, K = clip
    changes = {
        "t1": dict(video_a=video[0, :1], video_b=video[1, :1], gt_tracks_a=tracks[0, :1], gt_visible_a=vis[0, :1],
                   gt_tracks_b=tracks[1, :1], gt_visible_b=vis[1, :1], w2c_a=w2c[0, :1], K_a=K[0, :1],
                   w2c_b=w2c[1, :1], K_b=K[1, :1]),
        "nan": dict(gt_tracks_b=tracks[1] * np.nan),
        "blank": dict(video_b=np.zeros_like(video[1])),
        "same_camera": dict(w2c_b=w2c[0]),
        "hidden": dict(gt_visible_b=np.zeros_like(vis[1])),
    }[case]
    s = _score(clip, **changes)
    assert math.isnan(s["median_px"]) and math.isnan(s["frac_1px"]) and s["points"] == 0 and reason in s["reason"]


def test_shapes_are_checked(clip):
    with pytest.raises(ValueError, match="gt_tracks_a"):
        _score(clip, gt_tracks_a=clip[1][0, :, :3])
    with pytest.raises(ValueError, match="tracks_a, tracks_b"):
        track_pair_scores(np.zeros((2, 3, 2)), np.ones((2, 3), bool), np.zeros((2, 4, 2)), np.ones((2, 3), bool),
                          np.ones((2, 3), bool), np.ones((2, 3), bool), np.zeros(3, int), np.zeros((2, 3, 3)))
