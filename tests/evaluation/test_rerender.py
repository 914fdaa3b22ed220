import numpy as np
import pytest

from mvtrack.evaluation import covisible_mask, depth_warp, warp_psnr
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


def _plane_setup(shift=0.5, depth=2.0, H=16, W=20, T=2):
    """A fronto-parallel plane at constant depth seen by a camera and by the same camera moved ``shift`` along x."""
    K = np.tile(np.array([[10.0, 0, (W - 1) / 2], [0, 10.0, (H - 1) / 2], [0, 0, 1]]), (T, 1, 1))
    w2c_s = np.tile(np.eye(4), (T, 1, 1))
    w2c_t = w2c_s.copy()
    w2c_t[:, 0, 3] = -shift  # the target camera sits at x = +shift
    d = np.full((T, H, W), depth)
    return d, w2c_s, K, w2c_t


def test_covisible_mask_drops_pixels_that_leave_the_source_image():
    d, w2c_s, K, w2c_t = _plane_setup()
    mask = covisible_mask(d, d, w2c_s, K, w2c_t, K)
    # Target pixel x sees the plane point X = shift + (x - cx) z / f, which lands at x + f * shift / z = x + 2.5
    # in the source: the last 3 columns (x + 2.5 > W - 0.5) are outside, the rest inside.
    assert mask[:, :, :-3].all() and not mask[:, :, -3:].any()


def test_covisible_mask_drops_occluded_points():
    d, w2c_s, K, w2c_t = _plane_setup(shift=0.4)  # target column x lands on source column x + 2
    d_source = d.copy()
    d_source[:, :, 5] = 1.0  # something nearer covers source column 5, which target column 3 sees
    mask = covisible_mask(d_source, d, w2c_s, K, w2c_t, K)
    assert not mask[:, :, 3].any() and mask[:, :, :3].all() and mask[:, :, 4:-2].all() and not mask[:, :, -2:].any()


def test_warp_psnr_identity_and_ordering():
    cfg = SynthConfig(views=2, frames=3, height=32, width=32, num_tracks=4, baseline="small", dynamic_prob=0.0)
    clip = render_clips(cfg, [clip_seed(0, 1, "test")])
    v, d, w, K = (x[0].double().numpy() for x in (clip.video, clip.depth, clip.w2c, clip.K))
    # The source against itself, with its own cameras: the warp is the identity, so the error is exactly zero.
    assert depth_warp(v[0], d[0], w[0], K[0], w[0], K[0]) == pytest.approx(v[0], abs=1e-6)
    assert warp_psnr(v[0], v[0], d[0], d[0], w[0], K[0], w[0], K[0]) > 100
    truth = warp_psnr(v[1], v[0], d[0], d[1], w[0], K[0], w[1], K[1])
    copied = warp_psnr(v[0], v[0], d[0], d[1], w[0], K[0], w[1], K[1])
    noise = warp_psnr(np.random.default_rng(0).random(v[1].shape), v[0], d[0], d[1], w[0], K[0], w[1], K[1])
    assert truth > 22 and truth > copied + 3 > noise + 3


def test_warp_psnr_is_nan_without_covisible_pixels():
    d, w2c_s, K, w2c_t = _plane_setup(shift=100.0)
    video = np.zeros((2, 3, 16, 20))
    assert np.isnan(warp_psnr(video, video, d, d, w2c_s, K, w2c_t, K))


def test_track_splat_moves_the_source_along_the_tracks_and_fills_holes():
    from mvtrack.runners.references import track_splat

    rng = np.random.default_rng(0)
    source = rng.random((2, 3, 8, 10)).astype(np.float32)
    ys, xs = np.mgrid[0:8, 0:10]
    grid = np.stack([xs, ys], -1).reshape(-1, 2).astype(np.float32)  # every pixel, (80, 2)
    src = np.broadcast_to(grid, (2, 80, 2))
    same = track_splat(source, src, src, np.ones((2, 80)))
    assert np.abs(same - source).max() < 1 / 255  # identity tracks: the source itself (up to 8-bit rounding)
    shifted = track_splat(source, src, src + np.array([2.0, 0.0], np.float32), np.ones((2, 80)))
    assert np.abs(shifted[..., 2:] - source[..., :-2]).max() < 1 / 255  # two pixels to the right
    assert (shifted[..., :2] > 0).any()  # the uncovered left columns are inpainted, not left black
