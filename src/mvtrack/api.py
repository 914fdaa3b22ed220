"""The calls a Python user starts from; the commands call the same library functions.

    import mvtrack

    result = mvtrack.rerender("clip.mp4", ["orbit:15", "pan:10"], cameras="clip.txt")   # the embedded model
    result.save("outputs/gen")   # view_00_source.mp4, view_01.mp4, view_02.mp4, grid.mp4
"""

from __future__ import annotations

from pathlib import Path

from mvtrack.defaults import default_model


def load_pipeline(model: str | Path | None = None, device: str = "auto", dtype: str = "auto"):
    """A ``MultiViewPipeline`` of ``model`` (a model directory or preset; None: the embedded default) on ``device``
    (auto: CUDA when present, else the CPU) in ``dtype`` (auto: bfloat16 on CUDA, float32 on the CPU), progress bars
    off."""
    from mvtrack.devices import resolve_device, resolve_dtype
    from mvtrack.pipelines import MultiViewPipeline

    where = resolve_device(device)
    pipe = MultiViewPipeline.from_model(str(model or default_model()), resolve_dtype(dtype, where), device=where)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def rerender(video: str | Path, targets: list[str] | tuple[str, ...] = ("orbit:15",), *,
             model: str | Path | None = None, device: str = "auto", dtype: str = "auto", pipe=None, **options):
    """Re-render ``video`` along each target trajectory (``NAME[:AMOUNT]`` or a RealEstate10K file) with ``model``
    (None: the embedded default), or with an already loaded ``pipe``; ``options`` are ``generate_views``'s
    (``cameras``, ``depth``, ``frames``, ``size``, ``steps``, ``seed``, ``joint``, ...). Returns ``GeneratedViews``:
    ``.source``, ``.views`` (one (T, 3, H, W) video in [0, 1] per target), ``.notes`` and ``.save(out_dir)``."""
    from mvtrack.runners.generate import generate_views

    model = str(model or default_model())
    pipe = pipe or load_pipeline(model, device, dtype)
    return generate_views(pipe, model, video=video, targets=targets, **options)
