"""Evaluation: metric functions on numpy arrays, with the conventions of METRICS.md.

Imports numpy, OpenCV and ``mvtrack.geometry``'s numpy modules only: any system's videos can be scored where torch
is not installed (``tests/evaluation/test_without_torch.py``). The XFeat matcher needs torch and loads it lazily;
``matcher="sift"`` does not. Baselines and reference methods (they generate videos) are in ``mvtrack.runners``.
"""

from mvtrack.geometry.optical_flow import flow_tracks  # below data and evaluation, which both use it

from .cross_view import cross_view_track_consistency, track_pair_scores
from .epipolar import epipolar_consistency, epipolar_scores, sampson_distance
from .image import psnr, ssim, temporal_flickering
from .pose import angle_error_mat, angle_error_vec, camera_errors, estimate_pose, pose_auc, relative_pose_error
from .rerender import covisible_mask, depth_warp, view_scores, warp_psnr
from .sensitivity import camera_sensitivity
from .tracking import tapvid_metrics, to_tapvid, track_epe

__all__ = [
    "cross_view_track_consistency", "track_pair_scores",
    "epipolar_consistency", "epipolar_scores", "sampson_distance", "camera_sensitivity",
    "flow_tracks", "psnr", "ssim", "temporal_flickering", "angle_error_mat", "angle_error_vec", "camera_errors",
    "estimate_pose", "pose_auc", "relative_pose_error", "covisible_mask", "depth_warp", "view_scores", "warp_psnr",
    "tapvid_metrics", "to_tapvid", "track_epe",
]
