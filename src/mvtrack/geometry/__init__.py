"""Geometry core: camera conventions, projection, rays, two-view geometry, trajectories, camera files."""

from .cameras import (
    c2w_to_w2c,
    camera_centers,
    check_extrinsics,
    check_intrinsics,
    check_rotation,
    intrinsics_from_normalized,
    intrinsics_to_normalized,
    invert_rigid,
    look_at,
    make_intrinsics,
    opencv_to_opengl,
    opengl_to_opencv,
    relative_pose,
    resize_intrinsics,
    w2c_to_c2w,
)
from .crop import center_crop_box, crop_intrinsics, crop_points, inside_image
from .epipolar import (
    apply_homography,
    epipolar_distance,
    epipolar_lines,
    fundamental_matrix,
    plane_homography,
    point_line_distance,
    rotation_homography,
)
from .formats import CameraFile, read_re10k, write_re10k
from .projection import pixel_grid, project, transform_points, unproject, unproject_depth_map
from .rays import pixel_rays, plucker_rays
from .splat import bilinear_sample, bilinear_splat, carry_frames, zbuffer_visible
from .stereo import StereoDepth, fill_depth, plane_sweep_depth
from .rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_matrix, rotation_angle, slerp
from .trajectories import TRAJECTORIES, from_spec, interpolate, interpolate_poses
from .triangulate import Triangulation, triangulate_tracks

__all__ = [
    "c2w_to_w2c",
    "camera_centers",
    "check_extrinsics",
    "check_intrinsics",
    "check_rotation",
    "intrinsics_from_normalized",
    "intrinsics_to_normalized",
    "invert_rigid",
    "look_at",
    "make_intrinsics",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "relative_pose",
    "resize_intrinsics",
    "w2c_to_c2w",
    "center_crop_box",
    "crop_intrinsics",
    "crop_points",
    "inside_image",
    "apply_homography",
    "epipolar_distance",
    "epipolar_lines",
    "fundamental_matrix",
    "plane_homography",
    "point_line_distance",
    "rotation_homography",
    "CameraFile",
    "read_re10k",
    "write_re10k",
    "pixel_grid",
    "project",
    "transform_points",
    "unproject",
    "unproject_depth_map",
    "pixel_rays",
    "plucker_rays",
    "bilinear_sample",
    "bilinear_splat",
    "carry_frames",
    "zbuffer_visible",
    "StereoDepth",
    "fill_depth",
    "plane_sweep_depth",
    "axis_angle_to_matrix",
    "matrix_to_quaternion",
    "quaternion_to_matrix",
    "rotation_angle",
    "slerp",
    "TRAJECTORIES",
    "from_spec",
    "interpolate",
    "interpolate_poses",
    "Triangulation",
    "triangulate_tracks",
]
