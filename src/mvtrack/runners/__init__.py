"""Runners: library functions that run a pipeline on data and score it (``generate``, ``demo``, ``bench``, ``eval``,
the analyses); the CLI is a thin layer over them. Names load from their module on first use."""

from mvtrack._lazy import lazy_exports

_SOURCES = {
    "GeneratedViews": "generate", "SourceInputs": "generate", "check_generation_size": "generate",
    "generate_views": "generate", "image_to_video": "generate", "prepare_source": "generate",
    "rerender_video": "generate", "target_views": "generate",
    "rerender_clip": "rerender", "trained_data": "rerender",
}
__all__ = list(_SOURCES)
__getattr__, __dir__ = lazy_exports(__name__, _SOURCES)
