"""Camera file formats. RealEstate10K: one URL line, then one line per frame of 19 numbers,
``timestamp fx fy cx cy k1 k2 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3`` with intrinsics normalised
by the image size (edge-based) and the 3x4 world-to-camera matrix of an OpenCV camera, row-major."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from .cameras import check_rotation, intrinsics_from_normalized, intrinsics_to_normalized

_FIELDS = ["timestamp", "fx", "fy", "cx", "cy", "k1", "k2"] + [f"w2c[{i},{j}]" for i in range(3) for j in range(4)]


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


def read_re10k(path: str | Path) -> CameraFile:
    """Read a RealEstate10K camera file, checking every field; errors name the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"camera file {path}: not found")
    url, rows = "", []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
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
        if values[1] <= 0 or values[2] <= 0:
            raise ValueError(f"{path}:{lineno}: fields fx, fy must be positive, got {values[1]}, {values[2]}")
        R = torch.tensor(values[7:], dtype=torch.float64).reshape(3, 4)[:, :3]
        try:
            check_rotation(R, name=f"{path}:{lineno}: w2c rotation")
        except ValueError as e:
            raise ValueError(str(e)) from None
        rows.append(values)
    if not rows:
        raise ValueError(f"{path}: no camera lines")
    data = torch.tensor(rows, dtype=torch.float64)
    w2c = torch.eye(4, dtype=torch.float64).repeat(len(rows), 1, 1)
    w2c[:, :3, :] = data[:, 7:].reshape(-1, 3, 4)
    return CameraFile(w2c=w2c.float(), intrinsics=data[:, 1:5].float(), timestamps=data[:, 0].long(), url=url)


def write_re10k(
    path: str | Path, w2c: torch.Tensor, K: torch.Tensor, height: int, width: int, timestamps=None, url: str = ""
) -> None:
    """Write cameras ``w2c (T, 4, 4)`` and pixel intrinsics ``K (T, 3, 3)`` of an H x W video as RealEstate10K."""
    if w2c.dim() != 3 or w2c.shape[1:] != (4, 4):
        raise ValueError(f"w2c: expected (T, 4, 4), got {tuple(w2c.shape)}")
    if K.shape != (w2c.shape[0], 3, 3):
        raise ValueError(f"K: expected ({w2c.shape[0]}, 3, 3), got {tuple(K.shape)}")
    check_rotation(w2c[:, :3, :3], name="w2c rotation")
    k = intrinsics_to_normalized(K.double(), height, width)
    if timestamps is None:
        timestamps = range(w2c.shape[0])
    lines = [url or "synthetic"]
    for ts, kk, T in zip(timestamps, k.tolist(), w2c.double().tolist()):
        pose = [v for row in T[:3] for v in row]
        lines.append(" ".join([str(int(ts))] + [f"{v:.10g}" for v in kk] + ["0", "0"] + [f"{v:.10g}" for v in pose]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
