"""Runners: glue that runs a pipeline on data and scores it (``mvtrack demo``; later ``mvtrack bench``)."""

from .generate import (
    check_generation_size,
    default_intrinsics,
    load_frames,
    load_frames_cropped,
    source_cameras,
    target_cameras,
)
from .rerender import RerenderSettings, rerender_heldout

__all__ = [
    "RerenderSettings",
    "check_generation_size",
    "default_intrinsics",
    "load_frames",
    "load_frames_cropped",
    "rerender_heldout",
    "source_cameras",
    "target_cameras",
]
