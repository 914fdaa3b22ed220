"""Camera trajectory generators: each returns camera-to-world poses ``(T, 4, 4)`` starting at a given pose.

Motions are expressed relative to the start camera, so the same spec ("orbit:30") works for any scene:
``orbit`` turns about the world up axis through a centre, ``arc`` rises about the camera's right axis
through the centre, ``dolly`` moves along the optical axis, ``pan``/``tilt`` rotate in place. Angles are
in degrees; positive orbit is counter-clockwise seen from above, positive arc and tilt go up, positive pan
turns right and positive dolly moves forward.
"""

from __future__ import annotations

import math

import torch

from .cameras import check_extrinsics
from .rotations import axis_angle_to_matrix, matrix_to_quaternion, quaternion_to_matrix, slerp


def _progress(num_frames: int, like: torch.Tensor) -> torch.Tensor:
    if num_frames < 1:
        raise ValueError(f"num_frames: expected >= 1, got {num_frames}")
    return torch.linspace(0.0, 1.0, num_frames, dtype=like.dtype, device=like.device) if num_frames > 1 else torch.zeros(
        1, dtype=like.dtype, device=like.device
    )


def _check_start(c2w: torch.Tensor) -> None:
    if c2w.shape != (4, 4):
        raise ValueError(f"start_c2w: expected (4, 4), got {tuple(c2w.shape)}")
    check_extrinsics(c2w, name="start_c2w")


def _default_center(c2w: torch.Tensor, center, distance: float) -> torch.Tensor:
    if center is not None:
        return torch.as_tensor(center, dtype=c2w.dtype, device=c2w.device)
    return c2w[:3, 3] + distance * c2w[:3, 2]


def _rotate_about(c2w: torch.Tensor, center: torch.Tensor, axis: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """Rigidly rotate a camera about the line through ``center`` along ``axis`` by each angle (radians)."""
    Ra = axis_angle_to_matrix(axis.expand(len(angles), 3), angles)  # (T, 3, 3)
    out = c2w.expand(len(angles), 4, 4).clone()
    out[:, :3, :3] = Ra @ c2w[:3, :3]
    out[:, :3, 3] = center + ((c2w[:3, 3] - center) @ Ra.transpose(-1, -2))
    return out


def static(start_c2w: torch.Tensor, num_frames: int) -> torch.Tensor:
    """The start pose repeated: ``(T, 4, 4)``."""
    _check_start(start_c2w)
    _progress(num_frames, start_c2w)
    return start_c2w.expand(num_frames, 4, 4).clone()


def orbit(start_c2w, num_frames, degrees=30.0, center=None, up=None, distance=4.0) -> torch.Tensor:
    """Turn ``degrees`` about the up axis through ``center`` (default: ``distance`` ahead of the camera).

    ``up (3,)`` defaults to the start camera's up direction (its -y axis).
    """
    _check_start(start_c2w)
    s = _progress(num_frames, start_c2w)
    center = _default_center(start_c2w, center, distance)
    up = -start_c2w[:3, 1] if up is None else torch.as_tensor(up, dtype=start_c2w.dtype, device=start_c2w.device)
    return _rotate_about(start_c2w, center, up, s * math.radians(degrees))


def arc(start_c2w, num_frames, degrees=15.0, center=None, distance=4.0) -> torch.Tensor:
    """Rise by ``degrees`` about the camera's right axis through ``center``, keeping the centre in view."""
    _check_start(start_c2w)
    s = _progress(num_frames, start_c2w)
    center = _default_center(start_c2w, center, distance)
    return _rotate_about(start_c2w, center, -start_c2w[:3, 0], s * math.radians(degrees))


def dolly(start_c2w, num_frames, distance=1.0) -> torch.Tensor:
    """Move ``distance`` along the optical axis (negative: backwards)."""
    _check_start(start_c2w)
    s = _progress(num_frames, start_c2w)
    out = start_c2w.expand(num_frames, 4, 4).clone()
    out[:, :3, 3] = start_c2w[:3, 3] + s[:, None] * distance * start_c2w[:3, 2]
    return out


def _rotate_in_place(start_c2w, num_frames, degrees, axis_index) -> torch.Tensor:
    s = _progress(num_frames, start_c2w)
    axis = torch.zeros(3, dtype=start_c2w.dtype, device=start_c2w.device)
    axis[axis_index] = 1.0
    Rl = axis_angle_to_matrix(axis.expand(num_frames, 3), s * math.radians(degrees))  # camera-frame rotation
    out = start_c2w.expand(num_frames, 4, 4).clone()
    out[:, :3, :3] = start_c2w[:3, :3] @ Rl
    return out


def pan(start_c2w, num_frames, degrees=15.0) -> torch.Tensor:
    """Turn right by ``degrees`` about the camera's own vertical axis."""
    _check_start(start_c2w)
    return _rotate_in_place(start_c2w, num_frames, degrees, axis_index=1)


def tilt(start_c2w, num_frames, degrees=10.0) -> torch.Tensor:
    """Look up by ``degrees`` about the camera's own horizontal axis."""
    _check_start(start_c2w)
    return _rotate_in_place(start_c2w, num_frames, degrees, axis_index=0)


def smooth_random(
    start_c2w, num_frames, generator: torch.Generator | None = None, max_translation=0.5, max_degrees=10.0, harmonics=3
) -> torch.Tensor:
    """A smooth random path: translation and rotation offsets (camera frame) built from ``harmonics`` cosines.

    Every offset is 0 at the first frame and bounded by ``max_translation`` and ``max_degrees``.
    """
    _check_start(start_c2w)
    s = _progress(num_frames, start_c2w)
    k = torch.arange(1, harmonics + 1, dtype=start_c2w.dtype)
    coef = torch.randn(2, harmonics, 3, generator=generator, dtype=start_c2w.dtype) / k[:, None]
    basis = (1 - torch.cos(math.pi * k[None, :] * s[:, None].cpu())) / 2  # (T, harmonics), 0 at s = 0
    offsets = torch.einsum("th,ahc->atc", basis, coef)  # (2, T, 3)
    scale = offsets.norm(dim=-1).amax(dim=1).clamp_min(1e-12)  # (2,)
    trans = offsets[0] * (max_translation / scale[0])
    rot = offsets[1] * (math.radians(max_degrees) / scale[1])
    trans, rot = trans.to(start_c2w.device), rot.to(start_c2w.device)
    angle = rot.norm(dim=-1)
    Rl = axis_angle_to_matrix(torch.where(angle[:, None] > 0, rot, torch.ones_like(rot)), angle)
    out = start_c2w.expand(num_frames, 4, 4).clone()
    out[:, :3, :3] = start_c2w[:3, :3] @ Rl
    out[:, :3, 3] = start_c2w[:3, 3] + trans @ start_c2w[:3, :3].T
    return out


def interpolate(traj_a: torch.Tensor, traj_b: torch.Tensor, weight) -> torch.Tensor:
    """Blend two trajectories ``(T, 4, 4)`` frame by frame: slerp of rotations, lerp of camera centres.

    ``weight`` is a scalar or ``(T,)``: 0 gives ``traj_a``, 1 gives ``traj_b``.
    """
    if traj_a.shape != traj_b.shape or traj_a.shape[-2:] != (4, 4):
        raise ValueError(f"interpolate: expected two (T, 4, 4) trajectories, got {tuple(traj_a.shape)} and {tuple(traj_b.shape)}")
    w = torch.as_tensor(weight, dtype=traj_a.dtype, device=traj_a.device).expand(traj_a.shape[:-2])
    q = slerp(matrix_to_quaternion(traj_a[..., :3, :3]), matrix_to_quaternion(traj_b[..., :3, :3]), w)
    out = traj_a.clone()
    out[..., :3, :3] = quaternion_to_matrix(q)
    out[..., :3, 3] = (1 - w[..., None]) * traj_a[..., :3, 3] + w[..., None] * traj_b[..., :3, 3]
    return out


def interpolate_poses(c2w_a: torch.Tensor, c2w_b: torch.Tensor, num_frames: int) -> torch.Tensor:
    """``num_frames`` poses ``(T, 4, 4)`` going from ``c2w_a`` to ``c2w_b`` (both ``(4, 4)``) at constant speed."""
    s = _progress(num_frames, c2w_a)
    return interpolate(c2w_a.expand(num_frames, 4, 4), c2w_b.expand(num_frames, 4, 4), s)


TRAJECTORIES = {
    "static": static,
    "orbit": orbit,
    "arc": arc,
    "dolly": dolly,
    "pan": pan,
    "tilt": tilt,
    "random": smooth_random,
}


# The AMOUNT of each spec: (lowest, highest, unit), inclusive. Angles stop at a full turn (orbit, pan) or at looking
# straight up or down (arc, tilt); distances are in scene units (generate scales a real scene to the model's median
# depth, 8 units), so 100 is about twelve times the depth of the scene.
SPEC_RANGES = {
    "orbit": (-360.0, 360.0, "degrees"),
    "pan": (-360.0, 360.0, "degrees"),
    "arc": (-90.0, 90.0, "degrees"),
    "tilt": (-90.0, 90.0, "degrees"),
    "dolly": (-100.0, 100.0, "scene units"),
    "random": (0.0, 100.0, "scene units (the largest translation)"),
}


def from_spec(spec: str, start_c2w: torch.Tensor, num_frames: int, generator: torch.Generator | None = None, **kwargs):
    """Trajectory ``(T, 4, 4)`` from a spec ``NAME[:AMOUNT]``, e.g. ``orbit:30``, ``dolly:-0.5``, ``static``.

    AMOUNT is degrees for orbit, arc, pan and tilt, distance for dolly, and the largest translation for
    random, within ``SPEC_RANGES`` (a ``ValueError`` naming the spec and the range otherwise). ``kwargs`` go to
    the generator (``center``, ``up``, ``distance``...).
    """
    name, amount = parse_spec(spec)
    if amount is not None:
        kwargs[{"dolly": "distance", "random": "max_translation"}.get(name, "degrees")] = amount
    if name == "random":
        kwargs["generator"] = generator
    return TRAJECTORIES[name](start_c2w, num_frames, **kwargs)


def parse_spec(spec: str) -> tuple[str, float | None]:
    """``(name, amount or None)`` of a spec ``NAME[:AMOUNT]``, checked: a known name, an amount that is a finite
    number within ``SPEC_RANGES`` (none for static); ``ValueError`` naming the spec and what was expected."""
    if not isinstance(spec, str):
        raise ValueError(f"trajectory spec {spec!r}: expected a string NAME[:AMOUNT]")
    name, _, amount = spec.partition(":")
    if name not in TRAJECTORIES:
        raise ValueError(f"trajectory spec {spec!r}: unknown name {name!r}; expected one of {sorted(TRAJECTORIES)}")
    value = None
    if amount:
        try:
            value = float(amount)
        except ValueError:
            raise ValueError(f"trajectory spec {spec!r}: amount {amount!r} is not a number") from None
        if name == "static":
            raise ValueError(f"trajectory spec {spec!r}: 'static' takes no amount")
        lo, hi, unit = SPEC_RANGES[name]
        if not (math.isfinite(value) and lo <= value <= hi):
            raise ValueError(f"trajectory spec {spec!r}: amount {amount}: expected a finite number of {unit} in "
                             f"[{lo:g}, {hi:g}]")
    return name, value
