"""Output directories, checked before any work starts so that a bad ``--out`` fails in a second, not after, and
a refused command leaves nothing behind: the check creates nothing; commands create the directory when they write."""

from __future__ import annotations

import os
from pathlib import Path


def check_output_dir(path: str | Path, name: str = "--out") -> Path:
    """Check that ``path`` is, or can be created as, a directory that files can be written to; creates nothing.

    Raises ``ValueError`` naming ``name`` (the option or config key) when ``path`` is a file, lies under a file, or
    its nearest existing directory is not writable.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path}: exists and is not a directory (expected a directory for the outputs)")
    existing = path.absolute()
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} {path}: cannot be created, {existing} is a file (expected a directory for the "
                         "outputs)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: cannot be created or written ({existing} is not writable)")
    return path


def check_output_file(path: str | Path, name: str = "--out") -> Path:
    """Check that the file ``path`` can be written (its directory exists or can be created, and it is not a
    directory); creates nothing. ``ValueError`` naming ``name`` otherwise."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path}: is a directory (expected a file path)")
    check_output_dir(path.parent, name)
    return path
