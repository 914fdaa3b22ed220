"""Camera file formats. RealEstate10K: one URL line, then one line per frame of 19 numbers,
``timestamp fx fy cx cy k1 k2 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` with intrinsics normalised
by the image size (edge-based) and the 3x4 world-to-camera matrix of an OpenCV camera, row-major."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from .cameras import (
    check_intrinsics,
    check_rotation,
    intrinsics_from_normalized,
    intrinsics_to_normalized,
    invert_rigid,
)

_FIELDS = ["timestamp", "fx", "fy", "cx", "cy", "k1", "k2"] + [f"w2c[{i},{j}]" for i in range(3) for j in range(4)]

# Ranges of a camera file's fields, checked on every line read and before anything is written (docs/data.md).
# Intrinsics are normalised by the image size: fx/W, fy/H from 0.001 (a 179.9 degree field of view) to 1000 (0.06
# degrees; smaller focal lengths vanish in float32 and make K singular); the principal point cx/W, cy/H within one
# frame of the image, which spans [0, 1]; translations |t| <= 1e6 in the file's units (larger ones overflow float32
# in relative poses); timestamps within int64.
FOCAL_RANGE = (1e-3, 1e3)
PRINCIPAL_RANGE = (-1.0, 2.0)
MAX_TRANSLATION = 1e6
MAX_TIMESTAMP = 2.0**63


def camera_field_problem(timestamp: float, k: list[float], t: list[float]) -> str | None:
    """What is wrong with one camera's fields, or None: ``k`` = normalised (fx, fy, cx, cy), ``t`` = the w2c
    translation; the ranges above (``read_re10k`` and ``write_re10k`` check the same)."""
    if not abs(timestamp) < MAX_TIMESTAMP:
        return f"field timestamp = {timestamp:.10g}: expected an integer of magnitude < 2^63"
    for name, v in zip(("fx", "fy"), k[:2]):
        if not FOCAL_RANGE[0] <= v <= FOCAL_RANGE[1]:
            return (f"field {name} = {v:.10g}: expected a focal length in [{FOCAL_RANGE[0]:g}, {FOCAL_RANGE[1]:g}] "
                    f"(normalised by the image {'width' if name == 'fx' else 'height'})")
    for name, v in zip(("cx", "cy"), k[2:4]):
        if not PRINCIPAL_RANGE[0] <= v <= PRINCIPAL_RANGE[1]:
            return (f"field {name} = {v:.10g}: expected a principal point in [{PRINCIPAL_RANGE[0]:g}, "
                    f"{PRINCIPAL_RANGE[1]:g}] (normalised: the image spans [0, 1])")
    for i, v in enumerate(t):
        if not abs(v) <= MAX_TRANSLATION:
            return f"field w2c[{i},3] = {v:.10g}: expected a translation of magnitude <= {MAX_TRANSLATION:g}"
    return None


@dataclass
class CameraFile:
    """Cameras read from a file: ``w2c (T, 4, 4)``, normalised ``intrinsics (T, 4)``, ``timestamps (T,)``."""

    w2c: torch.Tensor
    intrinsics: torch.Tensor
    timestamps: torch.Tensor
    url: str = ""

    def __len__(self) -> int:
        return self.w2c.shape[0]

    def K(self, height: int, width: int) -> torch.Tensor:
        """Pixel intrinsics ``(T, 3, 3)`` for an H x W image."""
        return intrinsics_from_normalized(self.intrinsics, height, width)

    def relative(self) -> CameraFile:
        """The same cameras with poses relative to the first one (``w2c[0]`` = identity): ``w2c_t w2c_0^-1``."""
        return CameraFile(self.w2c @ invert_rigid(self.w2c[:1]), self.intrinsics, self.timestamps, self.url)


MIRRORED = ("error", "relative")


def read_re10k(path: str | Path, mirrored: str = "error") -> CameraFile:
    """Read a RealEstate10K camera file, checking every field; errors name the file, line and field.

    Some published pose files (CamI2V's demo poses) describe a mirrored world: every rotation has det = -1.
    Only their poses relative to the first camera are rigid motions; ``mirrored="relative"`` returns those
    (``w2c[0]`` = identity) with a warning, ``"error"`` (the default) refuses such a file and says how to read
    it. A file mixing det = +1 and det = -1 is always refused.
    """
    if mirrored not in MIRRORED:
        raise ValueError(f"read_re10k: mirrored: expected one of {MIRRORED}, got {mirrored!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera file {path}: not found")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ValueError(f"camera file {path}: not a text file (expected RealEstate10K lines)") from None
    url, rows, flipped = "", [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if lineno == 1 and len(parts) == 1:
            try:
                float(parts[0])
            except ValueError:
                url = parts[0]
                continue
        if len(parts) != len(_FIELDS):
            raise ValueError(
                f"{path}:{lineno}: expected {len(_FIELDS)} columns (timestamp, fx, fy, cx, cy, k1, k2, 3x4 w2c), "
                f"got {len(parts)}"
            )
        values = []
        for field, text in zip(_FIELDS, parts):
            try:
                v = float(text)
            except ValueError:
                raise ValueError(f"{path}:{lineno}: field {field} = {text!r} is not a number") from None
            if not math.isfinite(v):
                raise ValueError(f"{path}:{lineno}: field {field} is {text}, expected a finite number")
            values.append(v)
        problem = camera_field_problem(values[0], values[1:5], values[10:19:4])
        if problem:
            raise ValueError(f"{path}:{lineno}: {problem}")
        R = torch.tensor(values[7:], dtype=torch.float64).reshape(3, 4)[:, :3]
        try:
            check_rotation(R, name=f"{path}:{lineno}: w2c rotation")
            flipped.append(False)
        except ValueError as e:
            try:  # an orthogonal matrix with det = -1: -R is a rotation
                check_rotation(-R)
            except ValueError:
                raise ValueError(str(e)) from None
            flipped.append(lineno)
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no camera lines")
    data = torch.tensor(rows, dtype=torch.float64)
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(rows), 1, 1)
    w2c[:, :3, :] = data[:, 7:].reshape(-1, 3, 4)
    cams = CameraFile(w2c=w2c, intrinsics=data[:, 1:5].float(), timestamps=data[:, 0].long(), url=url)
    if any(flipped):
        lines = [x for x in flipped if x]
        if len(lines) < len(flipped):
            raise ValueError(f"{path}:{lines[0]}: w2c rotation has det = -1 while other lines have det = +1; expected "
                             "rotations (det = +1) on every line")
        if mirrored == "error":
            raise ValueError(f"{path}: every w2c rotation has det = -1 (a mirrored world, as in CamI2V's demo poses); "
                             "only its poses relative to the first camera are rigid: read it with read_re10k(path, "
                             "mirrored='relative') (mvtrack generate does so unless --absolute-targets)")
        warnings.warn(f"camera file {path}: a mirrored world (det(R) = -1 on every line); using its poses relative to "
                      "its first camera, which are rigid", stacklevel=2)
        cams = cams.relative()
    cams.w2c = cams.w2c.float()
    return cams


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def write_re10k(
    path: str | Path, w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, timestamps=None, url: str = ""
) -> None:
    """Write cameras ``w2c (T, 4, 4)`` and pixel intrinsics ``K (T, 3, 3)`` of an H x W video as RealEstate10K."""
    if w2c.dim() != 3 or w2c.shape[1:] != (4, 4) or w2c.shape[0] < 1:
        raise ValueError(f"w2c: expected (T, 4, 4) with T >= 1, got {tuple(w2c.shape)}")
    if K.shape != (w2c.shape[0], 3, 3):
        raise ValueError(f"K: expected ({w2c.shape[0]}, 3, 3), got {tuple(K.shape)}")
    if not torch.isfinite(w2c[:, :3]).all():
        raise ValueError("w2c: contains NaN or inf")
    check_rotation(w2c[:, :3, :3], name="w2c rotation")
    check_intrinsics(K.double(), name="K")  # the format has no skew: K must be (fx, 0, cx), (0, fy, cy), (0, 0, 1)
    if (K[:, 0, 1] != 0).any():
        raise ValueError("K: RealEstate10K files store no skew; expected K[0, 1] = 0")
    if isinstance(height, bool) or isinstance(width, bool) or int(height) != height or int(width) != width \
            or height < 1 or width < 1:
        raise ValueError(f"image size: expected positive integers, got {height} x {width}")
    k = intrinsics_to_normalized(K.double(), height, width)
    for i, (kk, T) in enumerate(zip(k.tolist(), w2c.double().tolist())):
        problem = camera_field_problem(0, kk, [row[3] for row in T[:3]])
        if problem:
            raise ValueError(f"camera {i}: {problem}")
    if timestamps is None:
        timestamps = range(w2c.shape[0])
    timestamps = [t.item() if hasattr(t, "item") else t for t in timestamps]  # tensors and numpy scalars too
    if len(timestamps) != w2c.shape[0] or not all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                  and math.isfinite(t) and int(t) == t and abs(t) < MAX_TIMESTAMP
                                                  for t in timestamps):
        raise ValueError(f"timestamps: expected {w2c.shape[0]} integers of magnitude < 2^63, got {timestamps[:4]}...")
    url = url or "synthetic"
    if len(url.split()) != 1 or url != url.strip() or _is_number(url):
        raise ValueError(f"url: expected one word that is not a number (the file's first line), got {url!r}")
    lines = [url]
    for ts, kk, T in zip(timestamps, k.tolist(), w2c.double().tolist()):
        pose = [v for row in T[:3] for v in row]
        lines.append(" ".join([str(int(ts))] + [f"{v:.10g}" for v in kk] + ["0", "0"] + [f"{v:.10g}" for v in pose]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
