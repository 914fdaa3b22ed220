import cv2
import numpy as np
import pytest

from mvtrack.evaluation.matching import get_matcher, mat_pix, match_videos, pose_errors


def _texture(H=64, W=80, seed=0):
    noise = np.random.default_rng(seed).random((H, W, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth * 255).astype(np.uint8)


@pytest.fixture(scope="module", params=["sift", "xfeat"])
def matcher(request):
    return get_matcher(request.param)


def test_matches_follow_a_known_shift_in_our_pixel_convention(matcher):
    """Frames under 256 px are upscaled before matching; keypoints must come back in the original pixels."""
    img0 = _texture()
    img1 = np.zeros_like(img0)
    img1[:, 3:] = img0[:, :-3]  # content moves 3 px to the right
    k0, k1 = matcher(img0, img1)
    assert len(k0) >= 20
    offset = np.median(k1 - k0, axis=0)
    assert offset == pytest.approx([3.0, 0.0], abs=0.25)
    assert k0.min() >= -0.5 and k0[:, 0].max() <= 79.5 and k0[:, 1].max() <= 63.5


def test_mat_pix_separates_related_frames_from_noise(matcher):
    video = np.stack([_texture(seed=s) for s in range(2)])
    noise = np.random.default_rng(1).integers(0, 256, video.shape, dtype=np.uint8)
    same = mat_pix(video, video, matcher)
    assert same >= 20 and mat_pix(video, noise, matcher) < same / 4
    with pytest.raises(ValueError, match="frame counts differ"):
        mat_pix(video, video[:1], matcher)


def test_pose_errors_are_inf_without_matches():
    blank = np.zeros((2, 32, 32, 3), np.uint8)
    eye = np.tile(np.eye(4), (2, 1, 1))
    K = np.tile(np.array([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]]), (2, 1, 1))
    assert np.isinf(pose_errors(match_videos(blank, blank, get_matcher("sift")), eye, eye, K, K)).all()


def test_unknown_matcher_is_named():
    with pytest.raises(ValueError, match="matcher: expected one of"):
        get_matcher("orb")
