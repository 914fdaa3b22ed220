"""Where and in what precision a command runs: ``--device`` / ``--dtype`` (and the config keys that name a device,
``data.render_device``, ``text.device``) parsed and checked against this machine in one place."""

from __future__ import annotations

import re

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
DEVICE_SPEC = re.compile(r"^(auto|cpu|cuda)(?::(\d{1,4}))?$")
EXPECTED_DEVICE = "expected auto, cpu, cuda or cuda:N"


def resolve_device(spec: str = "auto", name: str = "--device") -> torch.device:
    """``auto`` (CUDA when present, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``, checked against this machine.

    ``ValueError`` naming ``name`` (the option or config key the string came from) for anything else (``gpu``,
    ``cpu:1``, ``mps``, a number), for CUDA on a machine without it, and for a CUDA index it does not have.
    """
    match = DEVICE_SPEC.match(spec) if isinstance(spec, str) else None
    if match is None or (match[2] is not None and match[1] != "cuda"):
        plain = isinstance(spec, str) and spec.isprintable() and spec.strip() == spec and spec
        raise ValueError(f"{name} {spec if plain else repr(spec)}: {EXPECTED_DEVICE}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if match[1] == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = "built without CUDA" if torch.version.cuda is None else "no GPU found"
        raise ValueError(f"{name} {spec}: CUDA is not available on this machine (torch {torch.__version__}, {why}); "
                         "use cpu or auto")
    index = None if match[2] is None else int(match[2])
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(f"{name} {spec}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` (bfloat16 on CUDA, as Wan2.1 is run; float32 on the CPU), ``float32``, ``bfloat16`` or ``float16``;
    ``ValueError`` naming ``--dtype`` otherwise."""
    if spec == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise ValueError(f"--dtype {spec}: expected auto, {', '.join(DTYPES)}")
    return DTYPES[spec]
