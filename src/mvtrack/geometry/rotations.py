"""Rotation parameterisations: axis-angle, quaternions (w, x, y, z) and spherical interpolation."""

from __future__ import annotations

import torch


def axis_angle_to_matrix(axis: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula.

    Args:
        axis: (..., 3) rotation axes; normalised here, so any non-zero length works.
        angle: (...) angles in radians, broadcastable against ``axis[..., 0]``.

    Returns:
        (..., 3, 3) rotation matrices.
    """
    axis = axis / axis.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    angle = torch.as_tensor(angle, dtype=axis.dtype, device=axis.device)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(*x.shape, 3, 3)
    s = torch.sin(angle)[..., None, None]
    c = torch.cos(angle)[..., None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + s * skew + (1 - c) * (skew @ skew)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4) as (w, x, y, z) with w >= 0."""
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    # Shepperd's method: pick the largest of the four candidates for numerical stability.
    cands = torch.stack(
        [1 + trace, 1 + 2 * m[..., 0, 0] - trace, 1 + 2 * m[..., 1, 1] - trace, 1 + 2 * m[..., 2, 2] - trace], -1
    )
    best = cands.argmax(-1)
    r = cands.clamp_min(1e-12).sqrt()  # each is 2 * |component|
    qw = torch.stack([r[..., 0] / 2, (m[..., 2, 1] - m[..., 1, 2]) / (2 * r[..., 1]),
                      (m[..., 0, 2] - m[..., 2, 0]) / (2 * r[..., 2]), (m[..., 1, 0] - m[..., 0, 1]) / (2 * r[..., 3])], -1)
    qx = torch.stack([(m[..., 2, 1] - m[..., 1, 2]) / (2 * r[..., 0]), r[..., 1] / 2,
                      (m[..., 0, 1] + m[..., 1, 0]) / (2 * r[..., 2]), (m[..., 0, 2] + m[..., 2, 0]) / (2 * r[..., 3])], -1)
    qy = torch.stack([(m[..., 0, 2] - m[..., 2, 0]) / (2 * r[..., 0]), (m[..., 0, 1] + m[..., 1, 0]) / (2 * r[..., 1]),
                      r[..., 2] / 2, (m[..., 1, 2] + m[..., 2, 1]) / (2 * r[..., 3])], -1)
    qz = torch.stack([(m[..., 1, 0] - m[..., 0, 1]) / (2 * r[..., 0]), (m[..., 0, 2] + m[..., 2, 0]) / (2 * r[..., 1]),
                      (m[..., 1, 2] + m[..., 2, 1]) / (2 * r[..., 2]), r[..., 3] / 2], -1)
    idx = best[..., None]
    q = torch.stack([qw.gather(-1, idx), qx.gather(-1, idx), qy.gather(-1, idx), qz.gather(-1, idx)], -1)[..., 0, :]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Quaternions (..., 4) as (w, x, y, z), any non-zero length, to rotation matrices (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    return torch.stack(
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
         2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
         2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1
    ).reshape(*q.shape[:-1], 3, 3)


def slerp(q0: torch.Tensor, q1: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spherical linear interpolation along the shorter arc.

    Args:
        q0, q1: (..., 4) unit quaternions.
        alpha: (...) weights in [0, 1]; 0 gives ``q0``, 1 gives ``q1`` (up to sign).

    Returns:
        (..., 4) unit quaternions.
    """
    alpha = torch.as_tensor(alpha, dtype=q0.dtype, device=q0.device)[..., None]
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.arccos(dot)
    sin_theta = torch.sin(theta)
    near = sin_theta < 1e-6  # nearly parallel: linear interpolation is exact to first order
    w0 = torch.where(near, 1 - alpha, torch.sin((1 - alpha) * theta) / sin_theta.clamp_min(1e-12))
    w1 = torch.where(near, alpha, torch.sin(alpha * theta) / sin_theta.clamp_min(1e-12))
    q = w0 * q0 + w1 * q1
    return q / q.norm(dim=-1, keepdim=True)


def rotation_angle(R: torch.Tensor) -> torch.Tensor:
    """Angle in radians (...) of rotation matrices (..., 3, 3)."""
    cos = (R.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.arccos(cos.clamp(-1.0, 1.0))
