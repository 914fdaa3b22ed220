"""Runners: library functions that run a pipeline on data and score it (``generate``, ``demo``, ``bench``, ``eval``);
the CLI is a thin layer over them."""

from .generate import SourceInputs, check_generation_size, image_to_video, prepare_source, rerender_video, target_views
from .rerender import RerenderSettings, rerender_heldout

__all__ = [
    "RerenderSettings",
    "SourceInputs",
    "check_generation_size",
    "image_to_video",
    "prepare_source",
    "rerender_heldout",
    "rerender_video",
    "target_views",
]
