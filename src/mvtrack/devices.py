"""Where and in what precision a command runs: ``--device`` / ``--dtype`` parsed and checked in one place."""

from __future__ import annotations

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; ``ValueError`` naming
    ``--device`` for anything else, or for CUDA on a machine without it."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"--device {spec}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec}: CUDA is not available on this machine (torch {torch.__version__}"
                             f"{', built without CUDA' if torch.version.cuda is None else ', no GPU found'})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {spec}: expected auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` (bfloat16 on CUDA, as Wan2.1 is run; float32 on the CPU), ``float32``, ``bfloat16`` or ``float16``;
    ``ValueError`` naming ``--dtype`` otherwise."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise ValueError(f"--dtype {spec}: expected auto, {', '.join(DTYPES)}")
    return DTYPES[spec]
