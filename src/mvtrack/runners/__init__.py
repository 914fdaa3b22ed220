"""Runners: glue that runs a pipeline on data and scores it (``mvtrack demo``; later ``mvtrack bench``)."""

from .generate import default_intrinsics, load_frames, source_cameras, target_cameras
from .rerender import RerenderSettings, rerender_heldout

__all__ = [
    "RerenderSettings",
    "default_intrinsics",
    "load_frames",
    "rerender_heldout",
    "source_cameras",
    "target_cameras",
]
