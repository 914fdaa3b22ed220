"""``mvtrack demo``: a preset of the benchmark. A model re-renders a few held-out synthetic clips at the size it was
trained at, beside the reference rows, and everything is scored as ``mvtrack bench`` scores it (the decoded MP4s,
one scoring path), less the slow metrics (feature matching, COLMAP, flow tracks): seconds on a CPU, not minutes."""

from __future__ import annotations

from pathlib import Path

from mvtrack.defaults import SAMPLING_STEPS

from .bench import BenchConfig, BenchRun, MethodSpec, SplitGroup, method_name, run_bench
from .evaluate import EvalSettings
from .rerender import trained_data

DEMO_REFERENCES = ("copy_source", "source_depth_splat", "depth_warp")


def demo_run(model: str, clips: int = 4, steps: int = SAMPLING_STEPS, seed: int = 0, stream: str = "test",
             frames: int | None = None, height: int | None = None, width: int | None = None) -> BenchRun:
    """The demo as a benchmark run: ``clips`` clips of the ``stream`` seed stream (clip i from ``clip_seed(seed, i,
    stream)``) at the model's training views, length, size and baseline (``frames``, ``height``, ``width``
    override them), the model sampled with ``steps`` steps (clip i's noise seeded i), and the reference rows."""
    data = trained_data(model, frames=frames, height=height, width=width)
    split = BenchConfig(name=f"demo-{stream}", seed=seed, stream=stream, views=data.views, frames=data.frames,
                        height=data.height, width=data.width, groups=[SplitGroup("demo", clips, data.baseline)])
    return BenchRun(split, [MethodSpec(method_name(model), model=str(model), steps=steps)]
                    + [MethodSpec(m) for m in DEMO_REFERENCES])


def run_demo(run: BenchRun, out_dir: str | Path, progress=None, device=None, dtype=None) -> dict[str, dict]:
    """Run and score ``demo_run``'s run (``run_bench``'s layout under ``out_dir``, ``summary.md`` and
    ``contact_sheet.png`` at its top); returns its rows."""
    scoring = EvalSettings(cameras=False, tracks=False, pairs=False)
    return run_bench(run, out_dir, scoring, progress=progress, device=device, dtype=dtype)
