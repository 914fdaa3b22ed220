"""Output directories, checked before any work starts so that a bad ``--out`` fails in a second, not after."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_dir(path: str | Path, name: str = "--out") -> Path:
    """Create ``path`` (with its parents) and check that files can be written there.

    Raises ``ValueError`` naming ``name`` (the option or config key) when ``path`` is a file, lies under a file,
    or cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path}: exists and is not a directory (expected a directory for the outputs)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"{name} {path}: cannot be created ({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: not writable")
    return path
