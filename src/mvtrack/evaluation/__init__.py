"""Evaluation: metric functions on numpy arrays (no model code), with the conventions of METRICS.md."""

from .cross_view import cross_view_track_consistency, track_pair_scores
from .epipolar import epipolar_consistency, epipolar_scores, sampson_distance
from .optical_flow import flow_tracks
from .image import psnr, ssim, temporal_flickering
from .sensitivity import camera_sensitivity
from .pose import angle_error_mat, angle_error_vec, camera_errors, estimate_pose, pose_auc, relative_pose_error
from .rerender import copy_source, covisible_mask, depth_warp, track_splat, view_scores, warp_psnr
from .tracking import tapvid_metrics, to_tapvid, track_epe

__all__ = [
    "cross_view_track_consistency", "track_pair_scores",
    "epipolar_consistency", "epipolar_scores", "sampson_distance", "camera_sensitivity",
    "flow_tracks", "psnr", "ssim", "temporal_flickering", "angle_error_mat", "angle_error_vec", "camera_errors", "estimate_pose",
    "pose_auc", "relative_pose_error", "copy_source", "covisible_mask", "depth_warp", "track_splat", "view_scores", "warp_psnr", "tapvid_metrics", "to_tapvid", "track_epe",
]
