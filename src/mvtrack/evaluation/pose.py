"""Camera-pose metrics: two-view relative pose (CVD; SuperGlue's code) and trajectory accuracy of a
generated video (RotErr / TransErr / CamMC, as CamI2V's released code). Conventions in METRICS.md."""

from __future__ import annotations

import cv2
import numpy as np

NORMALIZATIONS = ("rel", "gt", "none")
CAMERA_KEYS = ("RotErr", "TransErr", "CamMC", "mRotErr", "mTransErr", "mCamMC")


def angle_error_mat(R1: np.ndarray, R2: np.ndarray) -> float:
    """Angle in degrees between two rotation matrices (3, 3)."""
    cos = (np.trace(R1.T @ R2) - 1) / 2
    return float(np.rad2deg(np.arccos(np.clip(cos, -1.0, 1.0))))


def angle_error_vec(v1: np.ndarray, v2: np.ndarray) -> float:
    """Angle in degrees between two vectors (3,)."""
    n = np.linalg.norm(v1) * np.linalg.norm(v2)
    return float(np.rad2deg(np.arccos(np.clip(np.dot(v1, v2) / n, -1.0, 1.0))))


def relative_pose_error(T_0to1: np.ndarray, R: np.ndarray | None, t: np.ndarray | None) -> tuple[float, float]:
    """(translation, rotation) errors in degrees of an estimated pose against the true ``T_0to1 (4, 4)``.

    The translation direction's sign is unobservable from two views, so ``t_err = min(e, 180 - e)``.
    A missing estimate (None) gives (inf, inf). A true translation of zero (norm <= ``ZERO_TRANSLATION``: pure
    rotation or a static camera) has no direction: ``t_err`` is NaN and only the rotation can be scored.
    """
    if R is None:
        return float("inf"), float("inf")
    r_err = angle_error_mat(R, T_0to1[:3, :3])
    if zero_translation(T_0to1):
        return float("nan"), r_err
    if t is None:
        return float("inf"), r_err
    t_err = angle_error_vec(t, T_0to1[:3, 3])
    return min(t_err, 180.0 - t_err), r_err


ZERO_TRANSLATION = 1e-6  # world units: below this a relative translation counts as none (a rotation-only pair)


def zero_translation(T_0to1: np.ndarray, tol: float = ZERO_TRANSLATION) -> bool:
    """Whether the relative pose ``T_0to1 (4, 4)`` has no translation (pure rotation or identity)."""
    return bool(np.linalg.norm(np.asarray(T_0to1, np.float64)[:3, 3]) <= tol)


RANSAC_ATTEMPTS = 4


def _ransac(estimate, p0: np.ndarray, p1: np.ndarray):
    """``estimate(p0, p1) -> (model, mask)`` by one of OpenCV's RANSAC estimators, surviving degenerate samples.

    OpenCV 5's minimal solvers raise on a degenerate minimal sample (the five-point solver's polynomial loses its
    leading coefficient: ``solvePoly`` asserts) instead of skipping it. Its RANSAC draws samples with a fixed
    generator, so which sample it meets depends on the exact matches, and the matches differ in the last digits
    from one processor's SIFT kernels to another's: one machine would score a view, another would fail on it.
    A raising run is retried on the matches in another fixed order (other samples, the same estimator);
    (None, None) after ``RANSAC_ATTEMPTS`` runs, or on input that is degenerate as a whole (collinear points,
    no motion). Deterministic for given matches.

    Args:
        p0, p1: (M, 2) normalised matched points.

    Returns:
        (model, inlier mask (M, 1) in the caller's order), or (None, None).
    """
    order = np.arange(len(p0))
    for attempt in range(RANSAC_ATTEMPTS):
        try:
            model, mask = estimate(np.ascontiguousarray(p0[order]), np.ascontiguousarray(p1[order]))
        except cv2.error:
            order = np.random.default_rng(attempt).permutation(len(p0))
            continue
        if mask is not None:
            unshuffled = np.empty_like(mask)
            unshuffled[order] = mask
            mask = unshuffled
        return model, mask
    return None, None


def unique_matches(kpts0: np.ndarray, kpts1: np.ndarray) -> np.ndarray:
    """Indices of the matches a geometric estimator should use: one of each repeated pair (SIFT returns a keypoint
    once per dominant orientation), none whose keypoint in either image is matched to two different points (at
    most one of them can be right, and two samples sharing a point make a degenerate minimal sample).

    Args:
        kpts0, kpts1: (M, 2) matched pixels.

    Returns:
        (M',) sorted indices into the matches.
    """
    pairs = np.c_[kpts0, kpts1]
    _, first = np.unique(pairs, axis=0, return_index=True)
    first = np.sort(first)
    keep = np.ones(len(first), bool)
    for side in (kpts0[first], kpts1[first]):
        _, inverse, counts = np.unique(side, axis=0, return_inverse=True, return_counts=True)
        keep &= counts[inverse.ravel()] == 1
    return first[keep]


def estimate_rotation(kpts0: np.ndarray, kpts1: np.ndarray, K0: np.ndarray, K1: np.ndarray, thresh: float = 1.0):
    """Relative rotation of a pure-rotation pair: RANSAC homography on K-normalised points (``p1 ~ R p0``),
    projected to the nearest rotation. (R (3, 3), inlier mask (M,)) or None with fewer than 4 ``unique_matches``
    or no estimate.

    Args:
        kpts0, kpts1: (M, 2) matched pixels; K0, K1: (3, 3) pixel intrinsics; thresh: RANSAC threshold (pixels).
    """
    kpts0, kpts1 = np.asarray(kpts0, np.float64).reshape(-1, 2), np.asarray(kpts1, np.float64).reshape(-1, 2)
    use = unique_matches(kpts0, kpts1)
    if len(use) < 4:
        return None
    f_mean = np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    p0 = (kpts0[use] - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]]
    p1 = (kpts1[use] - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]]
    H, mask = _ransac(lambda a, b: cv2.findHomography(a, b, cv2.RANSAC, thresh / f_mean), p0, p1)
    if H is None or not np.isfinite(H).all():
        return None
    if np.linalg.det(H) < 0:
        H = -H
    U, _, Vt = np.linalg.svd(H)
    R = U @ Vt
    if np.linalg.det(R) < 0:
        R = U @ np.diag([1.0, 1.0, -1.0]) @ Vt
    inliers = np.zeros(len(kpts0), bool)
    inliers[use] = mask.ravel() > 0
    return R, inliers


def estimate_pose(kpts0: np.ndarray, kpts1: np.ndarray, K0: np.ndarray, K1: np.ndarray, thresh: float = 1.0,
                  conf: float = 0.99999):
    """Relative pose from matches: RANSAC essential matrix on K-normalised points of the ``unique_matches``, then
    ``recoverPose``.

    Args:
        kpts0, kpts1: (M, 2) matched pixels in our convention; K0, K1: (3, 3) pixel intrinsics.
        thresh: RANSAC threshold in pixels, divided by the mean focal length (fx0, fy1, fx0, fy1).

    Returns:
        (R (3, 3), t (3,) unit, inlier mask (M,)) of the candidate with most inliers, or None (fewer than 5
        unique matches, or no estimate).
    """
    kpts0, kpts1 = np.asarray(kpts0, np.float64).reshape(-1, 2), np.asarray(kpts1, np.float64).reshape(-1, 2)
    use = unique_matches(kpts0, kpts1)
    if len(use) < 5:
        return None
    f_mean = np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    p0 = (kpts0[use] - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]]
    p1 = (kpts1[use] - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]]
    E, mask = _ransac(lambda a, b: cv2.findEssentialMat(a, b, np.eye(3), threshold=thresh / f_mean, prob=conf,
                                                         method=cv2.RANSAC), p0, p1)
    if E is None:
        return None
    best, result = 0, None
    for E_i in np.split(E, len(E) // 3):
        n, R, t, _ = cv2.recoverPose(E_i, p0, p1, np.eye(3), mask=mask.copy())  # default distance threshold 50
        if n > best:
            inliers = np.zeros(len(kpts0), bool)
            inliers[use] = mask.ravel() > 0
            best, result = n, (R, t[:, 0], inliers)
    return result


def pose_auc(errors, thresholds=(5, 10, 20)) -> list[float]:
    """Area under the recall curve of pose errors (degrees) up to each threshold, divided by it.

    The curve runs through (0, 0) and (e_i, i / N) over the sorted errors strictly below the threshold
    and is extended flat to the threshold. Errors [1, 3] give AUC@5 = 0.75; inf counts as a failure; no errors
    give NaN.

    Args:
        errors: (N,) degrees, >= 0 (inf for a pair without an estimate).
        thresholds: degrees, each a finite number > 0.

    Raises:
        ValueError: naming ``errors`` for a negative angle or a NaN (an error that is not known: a pair without an
            estimate is inf; ``relative_pose_error`` gives a rotation-only pair a NaN translation error, whose
            rotation error is its score), naming ``thresholds`` for one that is not a positive finite number.
    """
    try:
        errors = np.asarray(errors, np.float64).ravel()
        thresholds = np.asarray(thresholds, np.float64).ravel()
    except (TypeError, ValueError):
        raise ValueError(f"errors, thresholds: expected numbers (degrees), got {errors!r:.60} and "
                         f"{thresholds!r:.60}") from None
    if not (np.isfinite(thresholds).all() and (thresholds > 0).all()):
        raise ValueError(f"thresholds: expected finite angles > 0 degrees, got {thresholds.tolist()}")
    if np.isnan(errors).any():
        nan = np.flatnonzero(np.isnan(errors))
        raise ValueError(f"errors: {len(nan)} of {errors.size} are NaN (first at index {nan[0]}); expected angles >= 0 "
                         "degrees, inf for a pair without an estimate (a rotation-only pair's translation error is NaN "
                         "by design: score it by its rotation error)")
    if (errors < 0).any():
        raise ValueError(f"errors: expected angles >= 0 degrees, got min {errors[errors < 0].min()}")
    errors = np.sort(errors)
    if errors.size == 0:
        return [float("nan")] * len(thresholds)
    recall = np.r_[0.0, (np.arange(len(errors)) + 1) / len(errors)]
    errors = np.r_[0.0, errors]
    out = []
    for t in thresholds.tolist():
        last = np.searchsorted(errors, t)
        r = np.r_[recall[:last], recall[last - 1]]
        e = np.r_[errors[:last], t]
        out.append(float(np.trapezoid(r, x=e) / t))
    return out


def rigid_problem(poses: np.ndarray, atol: float = 1e-3) -> str | None:
    """What keeps finite ``poses (T, 4, 4)`` from being rigid transforms (a rotation block with R^T R = I and
    det = +1 within ``atol``, last row 0 0 0 1), naming the first bad pose; None when they all are."""
    R = poses[:, :3, :3]
    ortho = np.abs(np.swapaxes(R, 1, 2) @ R - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(R)
    row = np.abs(poses[:, 3] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=1)
    bad = np.flatnonzero((ortho > atol) | (np.abs(det - 1) > atol) | (row > 1e-6))
    if not bad.size:
        return None
    i = int(bad[0])
    return (f"pose {i} is not a rigid transform (|R^T R - I| = {ortho[i]:.3g}, det(R) = {det[i]:.4g}, last row "
            f"{poses[i, 3].tolist()})")


def relative_to_first(c2w: np.ndarray) -> np.ndarray:
    """Poses (T, 4, 4) relative to the first: ``inv(c2w_0) c2w_i``."""
    return np.linalg.inv(c2w[0])[None] @ c2w


def camera_errors(c2w_gen: np.ndarray, c2w_gt: np.ndarray, normalization: str = "rel") -> dict[str, float]:
    """RotErr, TransErr and CamMC of an estimated trajectory against the requested one.

    Args:
        c2w_gen, c2w_gt: (T, 4, 4) camera-to-world poses (OpenCV) of the generated and the requested frames.
        normalization: ``rel`` divides each trajectory's translations by its own max norm + 1e-9 (published
            tables); ``gt`` divides both by the ground truth's; ``none`` keeps raw units.

    Returns:
        ``RotErr`` (sum over frames of rotation angles, radians), ``TransErr`` (sum of translation
        distances), ``CamMC`` (sum of Frobenius norms of the 3x4 [R|t] differences), and their means
        over the T - 1 frames after the first (``mRotErr``, ``mTransErr``, ``mCamMC``); the first frame is
        the identity in both by construction. All NaN for T < 2 or non-finite poses (a frame not registered).

    Raises:
        ValueError: naming ``c2w_gen`` or ``c2w_gt`` and the pose, for shapes other than two (T, 4, 4) or finite
            poses that are not rigid transforms (they used to score zeros against themselves).
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization: expected one of {NORMALIZATIONS}, got {normalization!r}")
    gen, gt = np.asarray(c2w_gen, np.float64), np.asarray(c2w_gt, np.float64)
    if gen.shape != gt.shape or gen.ndim != 3 or gen.shape[1:] != (4, 4):
        raise ValueError(f"c2w_gen, c2w_gt: expected two (T, 4, 4) arrays, got {gen.shape} and {gt.shape}")
    if len(gen) < 2 or not (np.isfinite(gen).all() and np.isfinite(gt).all()):
        return dict.fromkeys(CAMERA_KEYS, float("nan"))  # no frame after the first, or a pose missing
    for name, poses in (("c2w_gen", gen), ("c2w_gt", gt)):
        problem = rigid_problem(poses)
        if problem:
            raise ValueError(f"{name}: {problem}; expected (T, 4, 4) camera-to-world rigid transforms")
    gen, gt = relative_to_first(gen), relative_to_first(gt)
    t_gen, t_gt = gen[:, :3, 3].copy(), gt[:, :3, 3].copy()
    if normalization == "rel":
        t_gen /= np.linalg.norm(t_gen, axis=-1).max() + 1e-9
        t_gt /= np.linalg.norm(t_gt, axis=-1).max() + 1e-9
    elif normalization == "gt":
        scale = np.linalg.norm(t_gt, axis=-1).max() + 1e-9
        t_gen, t_gt = t_gen / scale, t_gt / scale
    cos = (np.trace(np.swapaxes(gt[:, :3, :3], 1, 2) @ gen[:, :3, :3], axis1=1, axis2=2) - 1) / 2
    rot = np.arccos(np.clip(cos, -1.0, 1.0))
    trans = np.linalg.norm(t_gen - t_gt, axis=-1)
    m_gen = np.concatenate([gen[:, :3, :3], t_gen[..., None]], -1)
    m_gt = np.concatenate([gt[:, :3, :3], t_gt[..., None]], -1)
    cammc = np.linalg.norm((m_gen - m_gt).reshape(len(gen), -1), axis=-1)
    n = len(gen) - 1
    return {
        "RotErr": float(rot.sum()), "TransErr": float(trans.sum()), "CamMC": float(cammc.sum()),
        "mRotErr": float(rot.sum() / n), "mTransErr": float(trans.sum() / n), "mCamMC": float(cammc.sum() / n),
    }
