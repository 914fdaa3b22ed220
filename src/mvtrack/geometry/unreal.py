"""Unreal Engine cameras as MultiCamVideo (ReCamMaster) writes them, to and from OpenCV, and sensor intrinsics.

MultiCamVideo's ``camera_extrinsics.json`` stores, per frame and camera, Unreal's 4x4 transform in its row-vector
layout: rows 0-2 are the camera's forward (x), right (y) and up (z) axes in world coordinates, row 3 its location
in centimetres, last column (0, 0, 0, 1). Unreal's world is left-handed (x forward, y right, z up).

ReCamMaster's loader (``train_recammaster.py``, ``TensorDataset.__getitem__``; KwaiVGI/ReCamMaster, read at commit
39c0dc2) transposes the matrix into a column-vector camera-to-world, reorders its columns to (right, up, forward),
negates the second (up -> down) and divides the location by 100, which gives OpenCV camera axes (x right, y down,
z forward) in metres, but still in Unreal's left-handed world, so every rotation has det = -1. It only ever uses
poses relative to one camera, ``c2w_ref^-1 c2w``, whose rotations are proper.

Here the world is made right-handed as well by negating Unreal's y (world: x forward, y left, z up, metres). That is
a reflection of the world alone, so every relative pose is exactly ReCamMaster's, and every ``w2c`` is a rigid
OpenCV camera (det = +1) that ``mvtrack.geometry`` can use as it is.
"""

from __future__ import annotations

import torch

from .cameras import check_rotation, invert_rigid

CENTIMETRES_PER_METRE = 100.0
MULTICAM_SENSOR_MM = 23.76  # MultiCamVideo's sensor width and height (ReCamMaster README, "Camera Configurations")
# World reflection (Unreal y right -> y left) applied to homogeneous world coordinates.
_FLIP_WORLD_Y = torch.diag(torch.tensor([1.0, -1.0, 1.0, 1.0], dtype=torch.float64))


def unreal_to_opencv(matrix: torch.Tensor, name: str = "Unreal matrix") -> torch.Tensor:
    """OpenCV ``w2c (..., 4, 4)`` (float64, metres, right-handed z-up world) of Unreal matrices as written in
    MultiCamVideo's JSON.

    Args:
        matrix: (..., 4, 4) row-vector Unreal transforms: rows forward, right, up, location (cm); last column
            (0, 0, 0, 1).
        name: what to call the input in errors (the file and key).
    """
    if matrix.shape[-2:] != (4, 4):
        raise ValueError(f"{name}: expected (..., 4, 4), got {tuple(matrix.shape)}")
    m = matrix.double()
    if not torch.isfinite(m).all():
        raise ValueError(f"{name}: contains NaN or inf")
    last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64)
    if not torch.allclose(m[..., :, 3], last.expand_as(m[..., :, 3]), atol=1e-6):
        raise ValueError(f"{name}: expected a last column of (0, 0, 0, 1) (Unreal's row-vector layout)")
    check_rotation(m[..., :3, :3], name=f"{name} rotation rows")
    forward, right, up, location = m[..., 0, :3], m[..., 1, :3], m[..., 2, :3], m[..., 3, :3]
    # 1. ReCamMaster's camera-to-world: columns (right, -up, forward), location in metres (Unreal's world)
    c2w = torch.zeros_like(m)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2] = right, -up, forward
    c2w[..., :3, 3] = location / CENTIMETRES_PER_METRE
    c2w[..., 3, 3] = 1.0
    # 2. make the world right-handed: negate Unreal's y
    c2w = _FLIP_WORLD_Y @ c2w
    return invert_rigid(c2w)


def opencv_to_unreal(w2c: torch.Tensor) -> torch.Tensor:
    """Inverse of ``unreal_to_opencv``: the Unreal row-vector matrices ``(..., 4, 4)`` (float64, cm) of OpenCV
    cameras ``w2c (..., 4, 4)`` in the right-handed world (x forward, y left, z up, metres)."""
    if w2c.shape[-2:] != (4, 4):
        raise ValueError(f"w2c: expected (..., 4, 4), got {tuple(w2c.shape)}")
    c2w = _FLIP_WORLD_Y @ invert_rigid(w2c.double())
    m = torch.zeros_like(c2w)
    m[..., 0, :3] = c2w[..., :3, 2]  # forward
    m[..., 1, :3] = c2w[..., :3, 0]  # right
    m[..., 2, :3] = -c2w[..., :3, 1]  # up
    m[..., 3, :3] = c2w[..., :3, 3] * CENTIMETRES_PER_METRE
    m[..., 3, 3] = 1.0
    return m


def intrinsics_from_sensor(focal_mm: float, height: int, width: int, sensor_mm: tuple[float, float] = (
        MULTICAM_SENSOR_MM, MULTICAM_SENSOR_MM)) -> torch.Tensor:
    """Pixel intrinsics ``(3, 3)`` of an H x W image from a focal length and sensor size ``(height, width)`` in mm,
    principal point at the image centre (``((W - 1) / 2, (H - 1) / 2)`` in mvtrack's pixel convention)."""
    sensor_h, sensor_w = sensor_mm
    if not (focal_mm > 0 and sensor_h > 0 and sensor_w > 0 and height >= 1 and width >= 1):
        raise ValueError(f"intrinsics_from_sensor: expected positive focal length, sensor and image sizes, got "
                         f"{focal_mm} mm, {sensor_h}x{sensor_w} mm, {height}x{width} px")
    return torch.tensor([[focal_mm / sensor_w * width, 0.0, (width - 1) / 2],
                         [0.0, focal_mm / sensor_h * height, (height - 1) / 2],
                         [0.0, 0.0, 1.0]], dtype=torch.float64)
