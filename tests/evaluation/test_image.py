import numpy as np
import pytest
from skimage.metrics import structural_similarity

from mvtrack.evaluation import psnr, ssim, temporal_flickering


def test_psnr_by_hand():
    gt = np.zeros((2, 3, 8, 8))
    assert psnr(gt + 0.1, gt) == pytest.approx(np.array([20.0, 20.0]))
    assert np.isinf(psnr(gt, gt)).all()
    with pytest.raises(ValueError, match="shapes differ"):
        psnr(gt, gt[..., :4])


def test_ssim_matches_scikit_image():
    rng = np.random.default_rng(0)
    a = rng.random((3, 32, 40))
    b = np.clip(a + 0.1 * rng.standard_normal(a.shape), 0, 1)
    ref = structural_similarity(a.transpose(1, 2, 0), b.transpose(1, 2, 0), channel_axis=-1, gaussian_weights=True,
                                sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert ssim(b, a) == pytest.approx(ref, abs=1e-9)
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(np.stack([a, b]), np.stack([a, a])).shape == (2,)
    with pytest.raises(ValueError, match="at least 11"):
        ssim(a[:, :8], a[:, :8])


def test_temporal_flickering():
    still = np.full((4, 3, 6, 6), 0.3)
    assert temporal_flickering(still) == 1.0
    blink = np.stack([np.zeros((3, 6, 6)), np.ones((3, 6, 6))] * 2)
    assert temporal_flickering(blink) == 0.0
    mask = np.zeros((6, 6), bool)
    mask[:2] = True
    half = blink.copy()
    half[:, :, :2] = 0.5  # the masked rows are static
    assert temporal_flickering(half, mask) == 1.0
    assert np.isnan(temporal_flickering(still[:1]))  # T = 1: nothing to compare
    assert np.isnan(temporal_flickering(still[:0]))
