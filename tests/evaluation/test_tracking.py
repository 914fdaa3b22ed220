import numpy as np
import pytest

from mvtrack.evaluation import tapvid_metrics, to_tapvid, track_epe
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


def _one_track(T=5, query_t=0.0):
    gt = np.tile(np.array([[10.0, 20.0]]), (T, 1))[None]  # (1, T, 2)
    return np.array([[query_t, 20.0, 10.0]]), gt


def test_perfect_track_gives_aj_one():
    q, gt = _one_track()
    occ = np.zeros((1, 5), bool)
    m = tapvid_metrics(q, occ, gt, occ, gt.copy())
    assert m["average_jaccard"] == 1.0 and m["average_pts_within_thresh"] == 1.0 and m["occlusion_accuracy"] == 1.0


def test_three_pixel_error_is_within_4_not_2():
    q, gt = _one_track()
    occ = np.zeros((1, 5), bool)
    pred = gt + np.array([3.0, 0.0])
    m = tapvid_metrics(q, occ, gt, occ, pred)
    assert m["pts_within_2"] == 0.0 and m["pts_within_4"] == 1.0 and m["jaccard_2"] == 0.0 and m["jaccard_4"] == 1.0
    # At 128 x 128 the same error is 6 px on TAP-Vid's 256 x 256 scale: within 8, not within 4.
    m = tapvid_metrics(q, occ, gt, occ, pred, image_size=(128, 128))
    assert m["pts_within_4"] == 0.0 and m["pts_within_8"] == 1.0
    # Strictly below d: an error of exactly 4 is not within 4.
    m = tapvid_metrics(q, occ, gt, occ, gt + np.array([4.0, 0.0]))
    assert m["pts_within_4"] == 0.0


def test_jaccard_and_occlusion_accuracy_by_hand():
    # Frames scored (mode first, query at 0): 1, 2, 3, 4. gt visible at 1, 2, 3; occluded at 4.
    q, gt = _one_track()
    gt_occ = np.array([[False, False, False, False, True]])
    pred = gt.copy()
    pred[0, 2] += [10.0, 0.0]  # frame 2: visible but 10 px off
    pred_occ = np.array([[False, False, False, True, False]])  # frame 3 missed, frame 4 false alarm
    m = tapvid_metrics(q, gt_occ, gt, pred_occ, pred)
    assert m["occlusion_accuracy"] == 0.5  # frames 1, 2 right; 3, 4 wrong
    assert m["pts_within_1"] == pytest.approx(2 / 3)  # frames 1 and 3 (occlusion prediction ignored)
    assert m["jaccard_1"] == pytest.approx(1 / 5)  # TP {1}; gt positives 3; FP {2, 4}
    assert m["jaccard_16"] == pytest.approx(2 / 4)  # TP {1, 2}; FP {4}
    assert m["pts_within_16"] == 1.0


def test_query_modes_and_rounding():
    T = 4
    gt = np.zeros((1, T, 2))
    occ = np.zeros((1, T), bool)
    pred = gt.copy()
    pred[0, 0] += 100  # only frame 0 is wrong
    first = tapvid_metrics(np.array([[1.0, 0, 0]]), occ, gt, occ, pred, "first")
    strided = tapvid_metrics(np.array([[1.0, 0, 0]]), occ, gt, occ, pred, "strided")
    assert first["pts_within_1"] == 1.0  # frames 2, 3
    assert strided["pts_within_1"] == pytest.approx(2 / 3)  # frames 0, 2, 3
    # Query frame 0.5 rounds half to even (0): frame 0 is the query and is not scored in strided mode.
    assert tapvid_metrics(np.array([[0.5, 0, 0]]), occ, gt, occ, pred, "strided")["pts_within_1"] == 1.0
    with pytest.raises(ValueError, match="query_mode"):
        tapvid_metrics(np.array([[0.0, 0, 0]]), occ, gt, occ, pred, "all")


def test_nothing_visible_gives_nan_and_batches_are_per_video():
    q, gt = _one_track()
    occ = np.ones((1, 5), bool)
    m = tapvid_metrics(q, occ, gt, occ, gt)
    assert np.isnan(m["pts_within_1"]) and m["occlusion_accuracy"] == 1.0
    vis = np.zeros((1, 5), bool)
    batch = tapvid_metrics(np.stack([q, q]), np.stack([vis, vis]), np.stack([gt, gt]), np.stack([vis, vis]),
                           np.stack([gt, gt + 3.0]))
    assert batch["average_jaccard"].shape == (2,) and batch["average_jaccard"][0] == 1.0 and batch["average_jaccard"][1] < 1


def test_ground_truth_tracks_of_a_rendered_clip_score_perfectly():
    clip = render_clips(SynthConfig(views=2, frames=6, height=32, width=32, num_tracks=64), [clip_seed(1, 0)])[0]
    queries, tracks, visible = clip.queries.numpy(), clip.tracks.numpy(), clip.visible.numpy()
    for v in range(2):
        mine = queries[:, 0] == v  # queries made in this view are visible there at their query frame
        q, tr, occ = to_tapvid(queries[mine], tracks[:, :, mine], visible[:, :, mine], view=v)
        assert (~occ[np.arange(len(q)), q[:, 0].astype(int)]).all()
        m = tapvid_metrics(q, occ, tr, occ, tr, "strided", image_size=(32, 32))
        assert m["average_jaccard"] == 1.0 and m["occlusion_accuracy"] == 1.0
        assert track_epe(tr, tr, ~occ) == 0.0


def test_track_epe():
    gt = np.zeros((2, 3, 2))
    pred = gt + np.array([3.0, 4.0])
    vis = np.array([[True, False, False], [True, True, False]])
    assert track_epe(pred, gt, vis) == 5.0
    assert np.isnan(track_epe(pred, gt, np.zeros_like(vis)))
