import math

import cv2
import numpy as np
import pytest

from mvtrack.evaluation import camera_sensitivity, epipolar_consistency, epipolar_scores, sampson_distance
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

STEREO_F = np.array([[0.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # rectified stereo: epipolar lines are rows, y_b = y_a


def test_sampson_distance_by_hand():
    x_a = np.array([[10.0, 5.0], [3.0, 7.0], [0.0, 0.0]])
    x_b = np.array([[40.0, 5.0], [3.0, 9.0], [-8.0, 3.0]])
    # on the line: 0; 2 px across it: x_b^T F x_a = -2, |F x_a|^2 + |F^T x_b|^2 = 1 + 1, so sqrt(4 / 2) = sqrt(2)
    np.testing.assert_allclose(sampson_distance(x_a, x_b, STEREO_F), [0.0, math.sqrt(2), 3 / math.sqrt(2)])
    np.testing.assert_allclose(sampson_distance(x_a, x_b, 5 * STEREO_F), sampson_distance(x_a, x_b, STEREO_F))
    assert np.isnan(sampson_distance(x_a, x_b, np.zeros((3, 3)))).all()  # coincident centres: undefined
    with pytest.raises(ValueError, match="x_a, x_b"):
        sampson_distance(x_a, x_b[:2], STEREO_F)


def test_sampson_distance_squared_is_opencvs():
    rng = np.random.default_rng(0)
    F = rng.normal(size=(3, 3))
    x_a, x_b = rng.uniform(0, 64, (20, 2)), rng.uniform(0, 64, (20, 2))
    ours = sampson_distance(x_a, x_b, F) ** 2
    theirs = [cv2.sampsonDistance(np.r_[a, 1.0][:, None], np.r_[b, 1.0][:, None], F) for a, b in zip(x_a, x_b)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-9)


@pytest.fixture(scope="module")
def clip():
    cfg = SynthConfig(views=2, frames=3, height=64, width=64, num_tracks=128, baseline="small", dynamic_prob=0.0,
                      camera_motions=("orbit",))
    return render_clips(cfg, [clip_seed(0, 0, "test")])[0]


def test_exact_correspondences_score_zero_and_a_known_offset_scores_it(clip):
    """The engine's exact tracks as matches: 0 px; moved 2 px across their epipolar lines: the Sampson distance of
    that offset (d / sqrt(2) when the lines have the same direction and scale in both images, about that here)."""
    w2c, K = clip.w2c.double().numpy(), clip.K.double().numpy()
    tracks, vis = clip.tracks.double().numpy(), clip.visible.numpy()
    both = vis[0] & vis[1]  # (T, N)
    matches = [(tracks[0, t][both[t]], tracks[1, t][both[t]]) for t in range(3)]
    exact = epipolar_scores(matches, w2c[0], K[0], w2c[1], K[1])
    # The engine's tracks are float32: at 64 px one ulp is 2^-17 px (7.6e-6) and its projection adds a few, so exact
    # correspondences sit within ~1e-5 px of their lines on any processor; 1e-3 px is still 1000x below a 1 px error.
    assert exact["median_px"] < 1e-3 and exact["frac_1px"] == 1.0 and exact["matches"] == both.sum()
    from mvtrack.evaluation.epipolar import fundamental_matrices
    F = fundamental_matrices(w2c[0], K[0], w2c[1], K[1])
    moved = []
    for t, (a, b) in enumerate(matches):
        line = np.c_[a, np.ones(len(a))] @ F[t].T  # epipolar lines of a in image b
        normal = line[:, :2] / np.linalg.norm(line[:, :2], axis=1, keepdims=True)
        moved.append((a, b + 2 * normal))
    off = epipolar_scores(moved, w2c[0], K[0], w2c[1], K[1])
    assert 2 / math.sqrt(2) - 0.1 < off["median_px"] <= 2.0 and off["frac_1px"] == 0.0 and off["frac_4px"] == 1.0


def test_ground_truth_scores_near_zero_and_a_copy_badly(clip):
    v, w2c, K = clip.video.double().numpy(), clip.w2c.double().numpy(), clip.K.double().numpy()
    gt = epipolar_consistency(v[0], v[1], w2c[0], K[0], w2c[1], K[1], matcher="sift")
    copy = epipolar_consistency(v[0], v[0], w2c[0], K[0], w2c[1], K[1], matcher="sift")
    assert gt["matches"] >= 30 and gt["median_px"] < 1.0
    assert copy["median_px"] > 2 * gt["median_px"] and copy["frac_1px"] < gt["frac_1px"]


@pytest.mark.parametrize("case, reason", [
    ("empty", "no frames"), ("nan", "NaN"), ("blank", "blank frames"), ("same_camera", "no baseline"),
    ("noise_t1", None),
])
def test_degenerate_inputs_return_nan_with_a_reason(clip, case, reason):
    v, w2c, K = clip.video.double().numpy(), clip.w2c.double().numpy(), clip.K.double().numpy()
    a, b, wb = v[0], v[1], w2c[1]
    if case == "empty":
        a, b, w2c, K, wb = a[:0], b[:0], w2c[:, :0], K[:, :0], wb[:0]
    elif case == "nan":
        b = b * np.nan
    elif case == "blank":
        a, b = np.zeros_like(a), np.zeros_like(b)
    elif case == "same_camera":
        wb = w2c[0]
    else:  # T = 1, uniform noise: few or no matches, never a crash
        a, b, w2c, K, wb = a[:1], np.random.default_rng(0).random(b[:1].shape), w2c[:, :1], K[:, :1], wb[:1]
    r = epipolar_consistency(a, b, w2c[0], K[0], wb, K[1], matcher="sift")
    if reason is None:
        assert r["matches"] >= 0 and (r["matches"] > 0 or "reason" in r)
    else:
        assert math.isnan(r["median_px"]) and r["matches"] == 0 and reason in r["reason"]


def test_camera_sensitivity_by_hand():
    rng = np.random.default_rng(0)
    gt = rng.random((2, 3, 8, 8))
    true, seed2 = gt + 0.1, gt - 0.1
    # ignores its camera: the source-camera output equals the other-seed output, ratio exactly 1, no PSNR gain
    assert camera_sensitivity(true, seed2, seed2, gt) == {"ratio": 1.0, "psnr_gain": 0.0}
    far = gt + 0.5  # moves 0.4 away under the source camera, against 0.2 for a new seed
    s = camera_sensitivity(true, far, seed2, gt)
    assert s["ratio"] == pytest.approx(2.0) and s["psnr_gain"] == pytest.approx(20 * math.log10(5))
    assert math.isnan(camera_sensitivity(true, far, true)["ratio"])  # deterministic: the seed changes nothing
    assert math.isnan(camera_sensitivity(true * np.nan, far, seed2)["ratio"])
    with pytest.raises(ValueError, match="out_true, out_srccam, out_seed2"):
        camera_sensitivity(true, far[:1], seed2)
