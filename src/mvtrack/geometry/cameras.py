"""Camera conventions of mvtrack, and the only place that converts to and from others.

Inside the library cameras are OpenCV cameras (x right, y down, z forward) given as world-to-camera
matrices ``w2c (..., 4, 4)`` and pixel intrinsics ``K (..., 3, 3)``. A pixel coordinate ``(x, y)`` puts
the centre of the top-left pixel at (0, 0), as OpenCV and CoTracker do. Other conventions (c2w,
normalised intrinsics whose image spans [0, 1] edge to edge, OpenGL / Blender cameras) are converted
here and nowhere else.
"""

from __future__ import annotations

import torch

# OpenGL / Blender cameras look down -z with y up; OpenCV looks down +z with y down.
_GL_TO_CV = torch.tensor([1.0, -1.0, -1.0, 1.0])


def check_rotation(R: torch.Tensor, name: str = "rotation", atol: float = 1e-3) -> None:
    """Raise ``ValueError`` unless ``R (..., 3, 3)`` holds finite proper rotations (R^T R = I, det = +1)."""
    if R.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected (..., 3, 3) rotation matrices, got {tuple(R.shape)}")
    R = R.double()
    if not torch.isfinite(R).all():
        raise ValueError(f"{name}: contains NaN or inf")
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ortho = (R.transpose(-1, -2) @ R - eye).abs().amax(dim=(-1, -2))
    det = torch.linalg.det(R)
    bad = (ortho > atol) | ((det - 1).abs() > atol)
    if bad.any():
        first = tuple(int(i) for i in bad.nonzero()[0]) if bad.dim() else ()
        raise ValueError(
            f"{name}: expected a rotation matrix (R^T R = I, det = +1 within {atol}), got one at index {first} "
            f"with |R^T R - I| = {float(ortho.max()):.3g} and det = {float(det.reshape(-1)[bad.reshape(-1)][0]):.4f}"
        )


def check_extrinsics(T: torch.Tensor, name: str = "w2c") -> None:
    """Raise ``ValueError`` unless ``T (..., 4, 4)`` is a finite rigid transform with last row (0, 0, 0, 1)."""
    if T.shape[-2:] != (4, 4):
        raise ValueError(f"{name}: expected (..., 4, 4), got {tuple(T.shape)}")
    if not torch.isfinite(T).all():
        raise ValueError(f"{name}: contains NaN or inf")
    check_rotation(T[..., :3, :3], name=f"{name} rotation block")
    last = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=T.dtype, device=T.device)
    if not torch.allclose(T[..., 3, :], last.expand_as(T[..., 3, :]), atol=1e-6):
        raise ValueError(f"{name}: expected last row (0, 0, 0, 1)")


def check_intrinsics(K: torch.Tensor, name: str = "K") -> None:
    """Raise ``ValueError`` unless ``K (..., 3, 3)`` is finite, upper triangular in form, with fx, fy > 0."""
    if K.shape[-2:] != (3, 3):
        raise ValueError(f"{name}: expected (..., 3, 3), got {tuple(K.shape)}")
    if not torch.isfinite(K).all():
        raise ValueError(f"{name}: contains NaN or inf")
    if (K[..., 0, 0] <= 0).any() or (K[..., 1, 1] <= 0).any():
        raise ValueError(f"{name}: expected positive focal lengths fx, fy")
    if (K[..., 2, :2] != 0).any() or (K[..., 2, 2] != 1).any() or (K[..., 1, 0] != 0).any():
        raise ValueError(f"{name}: expected rows (fx, s, cx), (0, fy, cy), (0, 0, 1)")


def invert_rigid(T: torch.Tensor) -> torch.Tensor:
    """Inverse of rigid transforms ``(..., 4, 4)`` through the transpose (exact for rotations)."""
    R = T[..., :3, :3]
    t = T[..., :3, 3:]
    out = torch.zeros_like(T)
    out[..., :3, :3] = R.transpose(-1, -2)
    out[..., :3, 3:] = -R.transpose(-1, -2) @ t
    out[..., 3, 3] = 1
    return out


def w2c_to_c2w(w2c: torch.Tensor) -> torch.Tensor:
    """World-to-camera ``(..., 4, 4)`` to camera-to-world ``(..., 4, 4)``."""
    return invert_rigid(w2c)


def c2w_to_w2c(c2w: torch.Tensor) -> torch.Tensor:
    """Camera-to-world ``(..., 4, 4)`` to world-to-camera ``(..., 4, 4)``."""
    return invert_rigid(c2w)


def opengl_to_opencv(c2w_gl: torch.Tensor) -> torch.Tensor:
    """OpenGL / Blender camera-to-world ``(..., 4, 4)`` (y up, looking down -z) to OpenCV camera-to-world."""
    return c2w_gl * _GL_TO_CV.to(c2w_gl)


def opencv_to_opengl(c2w_cv: torch.Tensor) -> torch.Tensor:
    """OpenCV camera-to-world ``(..., 4, 4)`` to OpenGL / Blender camera-to-world."""
    return c2w_cv * _GL_TO_CV.to(c2w_cv)


def camera_centers(w2c: torch.Tensor) -> torch.Tensor:
    """Camera centres in world coordinates ``(..., 3)`` of ``w2c (..., 4, 4)``."""
    R = w2c[..., :3, :3]
    t = w2c[..., :3, 3:]
    return (-R.transpose(-1, -2) @ t)[..., 0]


def relative_pose(w2c_src: torch.Tensor, w2c_dst: torch.Tensor) -> torch.Tensor:
    """Transform ``(..., 4, 4)`` taking points in the source camera's frame to the destination camera's frame."""
    return w2c_dst @ invert_rigid(w2c_src)


def make_intrinsics(fx, fy, cx, cy) -> torch.Tensor:
    """Pixel intrinsics ``(..., 3, 3)`` from broadcastable focal lengths and principal point (our pixel convention)."""
    fx, fy, cx, cy = torch.broadcast_tensors(*(torch.as_tensor(v, dtype=torch.float32) for v in (fx, fy, cx, cy)))
    K = torch.zeros(*fx.shape, 3, 3, dtype=fx.dtype)
    K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = fx, fy, cx, cy, 1.0
    return K


def intrinsics_to_normalized(K: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel intrinsics ``(..., 3, 3)`` to normalised ``(..., 4)`` = (fx/W, fy/H, cx/W, cy/H) in edge coordinates.

    Normalised intrinsics (RealEstate10K) measure the principal point from the image's top-left *corner*,
    ours from the top-left pixel's *centre*, hence the half-pixel shift.
    """
    return torch.stack(
        [K[..., 0, 0] / width, K[..., 1, 1] / height, (K[..., 0, 2] + 0.5) / width, (K[..., 1, 2] + 0.5) / height], -1
    )


def intrinsics_from_normalized(k: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised intrinsics ``(..., 4)`` = (fx, fy, cx, cy) to pixel intrinsics ``(..., 3, 3)`` for an H x W image."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size: expected positive height and width, got {height} x {width}")
    fx, fy, cx, cy = k.unbind(-1)
    return make_intrinsics(fx * width, fy * height, cx * width - 0.5, cy * height - 0.5).to(k)


def resize_intrinsics(K: torch.Tensor, scale_x: float, scale_y: float) -> torch.Tensor:
    """Intrinsics ``(..., 3, 3)`` after resizing the image by (scale_x, scale_y), keeping pixel centres at integers."""
    out = K.clone()
    out[..., 0, 0] = K[..., 0, 0] * scale_x
    out[..., 1, 1] = K[..., 1, 1] * scale_y
    out[..., 0, 2] = (K[..., 0, 2] + 0.5) * scale_x - 0.5
    out[..., 1, 2] = (K[..., 1, 2] + 0.5) * scale_y - 0.5
    return out


def look_at(eye: torch.Tensor, target: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """OpenCV camera-to-world ``(..., 4, 4)`` of a camera at ``eye (..., 3)`` looking at ``target (..., 3)``.

    ``up (3,)`` is the world's up direction (default +z); the camera's y axis points away from it.
    """
    eye, target = torch.broadcast_tensors(eye, target)
    if up is None:
        up = torch.tensor([0.0, 0.0, 1.0], dtype=eye.dtype, device=eye.device)
    up = up.to(eye).expand_as(eye)
    z = target - eye
    z = z / z.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    x = torch.linalg.cross(z, up)
    x_norm = x.norm(dim=-1, keepdim=True)
    if (x_norm < 1e-8).any():
        raise ValueError("look_at: viewing direction is parallel to the up vector; pass another `up`")
    x = x / x_norm
    y = torch.linalg.cross(z, x)
    c2w = torch.zeros(*eye.shape[:-1], 4, 4, dtype=eye.dtype, device=eye.device)
    c2w[..., :3, 0], c2w[..., :3, 1], c2w[..., :3, 2], c2w[..., :3, 3] = x, y, z, eye
    c2w[..., 3, 3] = 1
    return c2w
