"""Camera-pose metrics: two-view relative pose (CVD; SuperGlue's code) and trajectory accuracy of a
generated video (RotErr / TransErr / CamMC, as CamI2V's released code). Conventions in METRICS.md."""

from __future__ import annotations

import cv2
import numpy as np

NORMALIZATIONS = ("rel", "gt", "none")


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
    A missing estimate (None) gives (inf, inf).
    """
    if R is None or t is None:
        return float("inf"), float("inf")
    t_err = angle_error_vec(t, T_0to1[:3, 3])
    return min(t_err, 180.0 - t_err), angle_error_mat(R, T_0to1[:3, :3])


def estimate_pose(kpts0: np.ndarray, kpts1: np.ndarray, K0: np.ndarray, K1: np.ndarray, thresh: float = 1.0,
                  conf: float = 0.99999):
    """Relative pose from matches: RANSAC essential matrix on K-normalised points, then ``recoverPose``.

    Args:
        kpts0, kpts1: (M, 2) matched pixels in our convention; K0, K1: (3, 3) pixel intrinsics.
        thresh: RANSAC threshold in pixels, divided by the mean focal length (fx0, fy1, fx0, fy1).

    Returns:
        (R (3, 3), t (3,) unit, inlier mask (M,)) of the candidate with most inliers, or None.
    """
    kpts0, kpts1 = np.asarray(kpts0, np.float64), np.asarray(kpts1, np.float64)
    if len(kpts0) < 5:
        return None
    f_mean = np.mean([K0[0, 0], K1[1, 1], K0[0, 0], K1[1, 1]])
    p0 = (kpts0 - K0[[0, 1], [2, 2]]) / K0[[0, 1], [0, 1]]
    p1 = (kpts1 - K1[[0, 1], [2, 2]]) / K1[[0, 1], [0, 1]]
    E, mask = cv2.findEssentialMat(p0, p1, np.eye(3), threshold=thresh / f_mean, prob=conf, method=cv2.RANSAC)
    if E is None:
        return None
    best, result = 0, None
    for E_i in np.split(E, len(E) // 3):
        n, R, t, _ = cv2.recoverPose(E_i, p0, p1, np.eye(3), mask=mask.copy())  # default distance threshold 50
        if n > best:
            best, result = n, (R, t[:, 0], mask.ravel() > 0)
    return result


def pose_auc(errors, thresholds=(5, 10, 20)) -> list[float]:
    """Area under the recall curve of pose errors (degrees) up to each threshold, divided by it.

    The curve runs through (0, 0) and (e_i, i / N) over the sorted errors strictly below the threshold
    and is extended flat to the threshold. Errors [1, 3] give AUC@5 = 0.75.
    """
    errors = np.sort(np.asarray(errors, np.float64))
    if errors.size == 0:
        return [float("nan")] * len(thresholds)
    recall = np.r_[0.0, (np.arange(len(errors)) + 1) / len(errors)]
    errors = np.r_[0.0, errors]
    out = []
    for t in thresholds:
        last = np.searchsorted(errors, t)
        r = np.r_[recall[:last], recall[last - 1]]
        e = np.r_[errors[:last], t]
        out.append(float(np.trapezoid(r, x=e) / t))
    return out


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
        the identity in both by construction.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization: expected one of {NORMALIZATIONS}, got {normalization!r}")
    gen, gt = np.asarray(c2w_gen, np.float64), np.asarray(c2w_gt, np.float64)
    if gen.shape != gt.shape or gen.ndim != 3 or gen.shape[1:] != (4, 4):
        raise ValueError(f"c2w_gen, c2w_gt: expected two (T, 4, 4) arrays, got {gen.shape} and {gt.shape}")
    if not (np.isfinite(gen).all() and np.isfinite(gt).all()):
        raise ValueError("c2w_gen, c2w_gt: contain NaN or inf")
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
    n = max(len(gen) - 1, 1)
    return {
        "RotErr": float(rot.sum()), "TransErr": float(trans.sum()), "CamMC": float(cammc.sum()),
        "mRotErr": float(rot.sum() / n), "mTransErr": float(trans.sum() / n), "mCamMC": float(cammc.sum() / n),
    }
