"""Geometry core: camera conventions, projection, rays, two-view geometry, trajectories, camera files.

The bottom layer: it imports nothing else of mvtrack. Names are loaded from their submodule on first use, so that
the numpy-only modules (``arrays``, ``optical_flow``, ``sfm``) are importable without torch: ``mvtrack.evaluation``
scores videos on machines that have no torch (docs/architecture.md).
"""

from mvtrack._lazy import lazy_exports

# public name -> the submodule that defines it
_SOURCES = {
    "c2w_to_w2c": "cameras", "camera_centers": "cameras", "check_extrinsics": "cameras",
    "check_intrinsics": "cameras", "check_rotation": "cameras", "intrinsics_from_normalized": "cameras",
    "intrinsics_to_normalized": "cameras", "invert_rigid": "cameras", "look_at": "cameras",
    "make_intrinsics": "cameras", "opencv_to_opengl": "cameras", "opengl_to_opencv": "cameras",
    "relative_pose": "cameras", "resize_intrinsics": "cameras", "w2c_to_c2w": "cameras",
    "center_crop_box": "crop", "crop_intrinsics": "crop", "crop_points": "crop", "inside_image": "crop",
    "apply_homography": "epipolar", "epipolar_distance": "epipolar", "epipolar_lines": "epipolar",
    "fundamental_matrix": "epipolar", "plane_homography": "epipolar", "point_line_distance": "epipolar",
    "rotation_homography": "epipolar",
    "CameraFile": "formats", "read_re10k": "formats", "write_re10k": "formats",
    "pixel_grid": "projection", "project": "projection", "transform_points": "projection", "unproject": "projection",
    "unproject_depth_map": "projection",
    "pixel_rays": "rays", "plucker_rays": "rays",
    "bilinear_sample": "splat", "bilinear_splat": "splat", "carry_frames": "splat", "fill_holes": "splat",
    "zbuffer_visible": "splat",
    "StereoDepth": "stereo", "fill_depth": "stereo", "plane_sweep_depth": "stereo",
    "axis_angle_to_matrix": "rotations", "matrix_to_quaternion": "rotations", "quaternion_to_matrix": "rotations",
    "rotation_angle": "rotations", "slerp": "rotations",
    "TRAJECTORIES": "trajectories", "from_spec": "trajectories", "interpolate": "trajectories",
    "interpolate_poses": "trajectories",
    "Triangulation": "triangulate", "triangulate_tracks": "triangulate",
}
__all__ = list(_SOURCES)
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
