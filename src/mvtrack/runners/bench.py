"""``mvtrack bench``: the held-out synthetic split written as an ``mvtrack eval`` ground-truth folder, a method's
re-renderings of it, and their scores.

The split (``configs/bench/heldout.yaml``, documented in ``docs/evaluation.md``) is a list of groups (static or
dynamic scenes, small or wide baselines); clip i of the split is rendered from ``clip_seed(seed, i, "test")``,
a stream training never draws from. View 0 is observed; views 1.. are to be generated along their true cameras.

Methods: ``model`` (an mvtrack checkpoint or preset) and the reference rows ``ground_truth`` (the true target
videos: the metrics' ceiling and the noise floor of the estimators), ``copy_source``, ``source_depth_splat`` and
``stereo_splat`` (the source splatted, with no learning, along the tracks a Track2View model is given: mode (b), or
the stereo geometry ``generate`` uses on real video), ``depth_warp`` (the source warped with true depth: an upper
reference no model can use) and ``noise`` (uniform noise: chance level).
"""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from mvtrack.config import read_yaml
from mvtrack.data import MultiViewClip
from mvtrack.defaults import SAMPLING_STEPS
from mvtrack.evaluation import depth_warp
from mvtrack.geometry import write_re10k
from mvtrack.outputs import check_output_dir
from mvtrack.runners.references import clip_stereo_splat, copy_source
from mvtrack.runners.rerender import rerender_clip, source_depth_splat
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.scenes.config import BASELINES, CAMERA_MOTIONS, HELD_OUT
from mvtrack.viz import to_uint8_frames, write_mp4

REFERENCE_METHODS = ("ground_truth", "copy_source", "source_depth_splat", "stereo_splat", "depth_warp", "noise")
# What a Track2View model and the source-depth splat are given: view 0's tracks, dense (the split's own
# annotations keep their tracks; only the tracks differ, the rendered clips are the same)
SOURCE_TRACKS = 2048
OBSERVED = ("rerender", "joint", "i2v")  # view 0 observed; nothing observed; only view 0's first frame observed
STREAMS = HELD_OUT  # seed streams training never draws from (BenchConfig.stream)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def safe_name(name: str, what: str) -> str:
    """``name`` when it is a plain file name (letters, digits, ``_ . -``, not starting with a dot), else a
    ValueError naming ``what``: names from configs become directories under the output root, nothing else."""
    if not isinstance(name, str) or not SAFE_NAME.match(name) or name in (".", ".."):
        raise ValueError(f"{what}: expected a plain name (letters, digits, _ . -), got {name!r}")
    return name
TRANSLATING_MOTIONS = ("orbit", "arc", "dolly", "random")  # COLMAP cannot reconstruct a static or rotating camera


def check_fields(obj, where: str, ranges: dict | None = None) -> None:
    """Each field of a config dataclass against its annotation, as YAML can give any type: an integer (not a
    boolean), a finite number, a string, true or false, a list; ``X | None`` also takes null. ``ranges``: key ->
    (lowest, highest), inclusive (None: open). ``ValueError`` naming ``where.key`` and what was expected."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            if value is None:
                continue
            hint = next(a for a in typing.get_args(hint) if a is not type(None))
        hint = typing.get_origin(hint) or hint
        ok, word = {
            int: (isinstance(value, int) and not isinstance(value, bool), "an integer"),
            float: (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value), "a finite number"),
            str: (isinstance(value, str), "a string"),
            bool: (isinstance(value, bool), "true or false"),
            list: (isinstance(value, (list, tuple)), "a list"),
            tuple: (isinstance(value, (list, tuple)), "a list"),
        }.get(hint, (True, ""))
        if not ok:
            raise ValueError(f"{where}.{f.name}: expected {word}, got {value!r:.100}")
        lo, hi = (ranges or {}).get(f.name, (None, None))
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
            raise ValueError(f"{where}.{f.name}: expected {word} {span}, got {value!r}")


@dataclass
class SplitGroup:
    name: str
    clips: int
    baseline: str = "small"  # small | wide | mixed (scenes.config.BASELINES)
    dynamic: bool = False  # objects move (dynamic_prob 1) or the scene is static (dynamic_prob 0)

    @classmethod
    def from_value(cls, value, where: str) -> SplitGroup:
        """A group from a config's mapping; ``ValueError`` naming ``where`` (``BenchConfig.groups[i]``)."""
        if isinstance(value, cls):
            return value
        names = [f.name for f in fields(cls)]
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping with keys {names}, got {value!r:.100}")
        unknown, missing = sorted(map(str, set(value) - set(names))), [k for k in ("name", "clips") if k not in value]
        if unknown or missing:
            raise ValueError(f"{where}: expected keys among {names} with name and clips, got "
                             + ", ".join(x for x in (f"unknown {unknown}" if unknown else "",
                                                     f"no {missing}" if missing else "") if x))
        group = cls(**value)
        check_fields(group, where, BENCH_RANGES)
        if group.baseline not in BASELINES:
            raise ValueError(f"{where}.baseline: expected one of {BASELINES}, got {group.baseline!r}")
        return group


# Ranges of a split's numbers (inclusive): seeds 32-bit (as every --seed), sizes and lengths those of `generate`
# (MAX_SIDE, MAX_FRAMES), at least two views (view 0 is observed); clips per group.
MAX_SEED = 2**32 - 1
BENCH_RANGES = {"seed": (0, MAX_SEED), "views": (2, 64), "frames": (1, 1024), "height": (8, 4096), "width": (8, 4096),
                "num_tracks": (1, 65536), "clips": (1, 10000)}


@dataclass
class BenchConfig:
    name: str = "heldout"
    seed: int = 0
    views: int = 2
    frames: int = 8
    height: int = 64
    width: int = 64
    num_tracks: int = 64
    camera_motions: tuple = TRANSLATING_MOTIONS
    groups: list = field(default_factory=list)
    observed: str = "rerender"  # rerender | joint | i2v (joint and i2v: every view generated, scored in pairs)
    stream: str = "test"  # the seed stream of the clips: test (held out) or val (for choosing checkpoints)
    reference_methods = REFERENCE_METHODS

    def __post_init__(self):
        check_fields(self, "BenchConfig", BENCH_RANGES)  # types and ranges first: YAML gives anything
        safe_name(self.name, "BenchConfig.name")
        if self.observed not in OBSERVED:
            raise ValueError(f"BenchConfig.observed: expected one of {OBSERVED}, got {self.observed!r}")
        self.groups = [SplitGroup.from_value(g, f"BenchConfig.groups[{i}]") for i, g in enumerate(self.groups)]
        if not self.groups:
            raise ValueError("BenchConfig.groups: expected at least one group")
        if self.stream not in STREAMS:
            raise ValueError(f"BenchConfig.stream: expected one of {STREAMS}, got {self.stream!r}")
        self.camera_motions = tuple(self.camera_motions)
        if not self.camera_motions or not all(m in CAMERA_MOTIONS for m in self.camera_motions):
            raise ValueError(f"BenchConfig.camera_motions: expected a non-empty list among {CAMERA_MOTIONS}, got "
                             f"{list(self.camera_motions)!r:.100}")

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchConfig:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"benchmark config: no file at {path}")
        split = load_split(path)
        if not isinstance(split, cls):
            raise ValueError(f"{path}: a real-footage split (root:), not a synthetic one; read it with load_split")
        return split

    def num_clips(self) -> int:
        return sum(g.clips for g in self.groups)

    def describe(self) -> str:
        return (f"{self.name}: {self.num_clips()} clips, {self.views} views x {self.frames} frames, "
                f"{self.height}x{self.width}, {self.observed}")

    def write_ground_truth(self, out_dir: str | Path, progress: Callable[[], None] | None = None) -> Path:
        return write_ground_truth(self, out_dir, progress)

    def write_predictions(self, out_dir: str | Path, method: str = "model", pipe=None, steps: int = SAMPLING_STEPS,
                          seed: int = 0, progress=None, sensitivity: bool = False, views_per_group=None, model_dir=None):
        return write_predictions(self, out_dir, method, pipe, steps, seed, progress, sensitivity, views_per_group)

    def clip_configs(self, source_tracks: bool = False) -> list[tuple[str, SynthConfig]]:
        """(group name, engine config) of every clip of the split, in order; ``source_tracks``: with
        ``SOURCE_TRACKS`` tracks queried in view 0 instead of the split's annotation tracks (same clips)."""
        out = []
        tracks = dict(num_tracks=SOURCE_TRACKS, query_view=0) if source_tracks else dict(num_tracks=self.num_tracks)
        for g in self.groups:
            cfg = SynthConfig(views=self.views, frames=self.frames, height=self.height, width=self.width,
                              baseline=g.baseline, dynamic_prob=float(g.dynamic), camera_motions=self.camera_motions,
                              **tracks)
            out += [(g.name, cfg)] * g.clips
        return out


def load_split(path: str | Path, raw: dict | None = None):
    """A split config: a synthetic ``BenchConfig``, or a ``RealSplit`` (a mapping with ``root:``, a folder of
    RealEstate10K-format clips, relative to the config file). ``raw``: the mapping, already read from ``path``."""
    from .real_bench import RealSplit

    path = Path(path)
    if raw is None:
        raw = read_yaml(path, "benchmark config")
    if isinstance(raw, dict) and "root" in raw:
        names = {f.name for f in fields(RealSplit)} - {"views", "observed", "reference_methods"}
        if set(raw) - names:
            raise ValueError(f"{path}: a real-footage split takes keys among {sorted(names)}, got {sorted(raw)}")
        root = Path(str(raw["root"]))
        return RealSplit(**{**raw, "root": str(root if root.is_absolute() else path.parent / root)})
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping, got {raw!r:.200}")
    names = {f.name for f in fields(BenchConfig)}
    if set(raw) - names:
        raise ValueError(f"{path}: expected a mapping with keys among {sorted(names)}, got {raw!r:.200}")
    try:
        return BenchConfig(**raw)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def render_split(config: BenchConfig, source_tracks: bool = False) -> list[tuple[str, MultiViewClip]]:
    """(group, clip) for every clip of the split; clip i comes from ``clip_seed(config.seed, i, config.stream)``.
    ``source_tracks``: the clips carry dense view-0 tracks (what models and the source-depth splat are given)."""
    return [(group, render_clips(cfg, [clip_seed(config.seed, i, config.stream)]))
            for i, (group, cfg) in enumerate(config.clip_configs(source_tracks))]


def clip_name(i: int) -> str:
    return f"clip_{i:04d}"


def write_ground_truth(config: BenchConfig, out_dir: str | Path, progress: Callable[[], None] | None = None) -> Path:
    """Write the split as an ``mvtrack eval`` ground-truth folder (videos, camera files, annotations.npz with
    depth and tracks, meta.json) and ``split.json``; reuse it when ``split.json`` already matches the config."""
    out = Path(out_dir)
    stamp = json.dumps(asdict(config), sort_keys=True, default=list)
    if (out / "split.json").is_file() and (out / "split.json").read_text() == stamp:
        return out
    if out.exists():
        if not (out / "split.json").is_file() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"{out}: exists and is not a split written by mvtrack bench (no split.json); "
                             f"refusing to replace it")
        shutil.rmtree(out)  # an older split written here: it holds split.json
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for i, (group, clip) in enumerate(render_split(config)):
        d = tmp / clip_name(i)
        for v in range(config.views):
            write_mp4(d / f"view_{v}.mp4", to_uint8_frames(clip.video[0, v]))
            write_re10k(d / f"view_{v}.txt", clip.w2c[0, v], clip.K[0, v], config.height, config.width)
        np.savez_compressed(d / "annotations.npz", depth=clip.depth[0].numpy().astype(np.float32),
                            tracks=clip.tracks[0].numpy().astype(np.float32), visible=clip.visible[0].numpy())
        (d / "meta.json").write_text(json.dumps({"group": group, **clip.meta[0]}, indent=1, default=str))
        if progress is not None:
            progress()
    (tmp / "split.json").write_text(stamp)
    tmp.rename(out)
    return out


def reference_prediction(method: str, clip: MultiViewClip, view: int, seed: int = 0) -> np.ndarray:
    """A reference method's view ``view`` of a single-clip batch: uint8 (T, H, W, 3)."""
    video = clip.video[0].double().numpy()
    if method == "ground_truth":
        pred = video[view]
    elif method == "copy_source":  # in joint splits too: every view a copy of the true view 0
        pred = copy_source(video[0])
    elif method in ("source_depth_splat", "stereo_splat"):  # the tracks a Track2View model is given, no learning
        if view == 0:
            raise ValueError(f"{method}: a re-rendering reference (view 0 is its source); not for joint or "
                             "image-to-video splits")
        pred = source_depth_splat(clip, view) if method == "source_depth_splat" else clip_stereo_splat(clip, view)
    elif method == "depth_warp":
        d, w, K = (x[0].double().numpy() for x in (clip.depth, clip.w2c, clip.K))
        pred = depth_warp(video[0], d[view], w[0], K[0], w[view], K[view])
    elif method == "noise":
        pred = np.random.default_rng([seed, view]).random(video[view].shape)  # views differ from each other
    else:
        raise ValueError(f"method: expected one of {REFERENCE_METHODS} or a model, got {method!r}")
    return to_uint8_frames(torch.from_numpy(np.asarray(pred)).float())


def source_camera_clip(clip: MultiViewClip) -> MultiViewClip:
    """A copy of a single-clip batch whose target views (1..) carry the source view's cameras (w2c and K)."""
    out = copy.copy(clip)
    out.w2c, out.K = clip.w2c.clone(), clip.K.clone()
    out.w2c[:, 1:] = clip.w2c[:, :1]
    out.K[:, 1:] = clip.K[:, :1]
    return out


def _generate(pipe, clip: MultiViewClip, observed: str, steps: int, seed: int,
              views_per_group: int | None = None) -> torch.Tensor:
    """(1, V, T, 3, H, W) on the CPU: re-rendering through ``rerender_clip`` (the one path that gives conditioned
    models their inputs), joint / i2v generation through the pipeline directly."""
    generator = torch.Generator().manual_seed(seed)
    if observed == "rerender":
        return rerender_clip(pipe, clip, steps, generator, views_per_group)
    return pipe(clip.w2c, clip.K, clip.video, observed, num_inference_steps=steps, generator=generator,
                views_per_group=views_per_group).video.cpu()


def generated_views(config: BenchConfig) -> range:
    """Views a method must produce: 1.. when re-rendering, all of them in joint / i2v generation."""
    return range(1 if config.observed == "rerender" else 0, config.views)


def write_predictions(
    config: BenchConfig,
    out_dir: str | Path,
    method: str = "model",
    pipe=None,
    steps: int = SAMPLING_STEPS,
    seed: int = 0,
    progress: Callable[[], None] | None = None,
    sensitivity: bool = False,
    views_per_group: int | None = None,
) -> Path | tuple[Path, list[dict]]:
    """Run ``method`` on every clip of the split (``model`` needs ``pipe``, a MultiViewPipeline) into an
    ``mvtrack eval`` prediction folder: ``<clip>/view_<v>.mp4`` for v >= 1 (v >= 0 in joint / i2v splits). Clip i's
    sampling noise is seeded ``seed + i``.

    With ``sensitivity`` (models, re-rendering only) each clip is also generated with the source's cameras in
    place of the targets' and with another seed (``seed + i + 10_000``, used by both), and
    :func:`mvtrack.evaluation.camera_sensitivity` is returned per clip: ``(out, [{"clip", "ratio", "psnr_gain"}])``.
    ``views_per_group``: the pipeline's collaborative inference (CVD), None for joint attention over all views.
    """
    from mvtrack.evaluation import camera_sensitivity

    out = Path(out_dir)
    scores = []
    views = generated_views(config)
    for i, (_, clip) in enumerate(render_split(config, source_tracks=method in ("model", "source_depth_splat"))):
        if method == "model":
            if pipe is None:
                raise ValueError("method model: a pipeline is needed")
            video = _generate(pipe, clip, config.observed, steps, seed + i, views_per_group)
            preds = {v: to_uint8_frames(video[0, v]) for v in views}
            if sensitivity and config.observed == "rerender":
                other = seed + i + 10_000
                srccam = _generate(pipe, source_camera_clip(clip), "rerender", steps, other, views_per_group)
                seed2 = _generate(pipe, clip, "rerender", steps, other, views_per_group)
                s = camera_sensitivity(*(x[0, 1:].double().numpy() for x in (video, srccam, seed2)),
                                       gt=clip.video[0, 1:].double().numpy())
                scores.append({"clip": clip_name(i), **s})
        else:
            preds = {v: reference_prediction(method, clip, v, seed + i) for v in views}
        for v, frames in preds.items():
            write_mp4(out / clip_name(i) / f"view_{v}.mp4", frames)
        if progress is not None:
            progress()
    return (out, scores) if sensitivity else out


@dataclass
class MethodSpec:
    """One row of the results table: a reference method, or a model directory / preset sampled with each seed."""

    name: str
    model: str | None = None  # None: ``name`` is a reference method
    seeds: list = field(default_factory=lambda: [0])
    steps: int = SAMPLING_STEPS
    sensitivity: bool = False  # also measure camera sensitivity (models on re-rendering splits; 3x the sampling)
    views_per_group: int | None = None  # CVD's collaborative inference (models): generated views per group

    def __post_init__(self):
        safe_name(self.name, "methods[].name")
        check_fields(self, f"methods[{self.name}]", {"steps": (1, 1000), "views_per_group": (1, 64)})
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= MAX_SEED for x in self.seeds):
            raise ValueError(f"methods[{self.name}].seeds: expected a list of integers in [0, {MAX_SEED}], got "
                             f"{self.seeds!r:.100}")
        if self.model is None and self.name not in all_reference_methods():
            raise ValueError(f"methods[{self.name}]: expected a reference method {all_reference_methods()} or a model "
                             f"directory (model: ...)")
        if not self.seeds or not all(isinstance(x, int) for x in self.seeds):
            raise ValueError(f"methods[{self.name}].seeds: expected a non-empty list of integers, got {self.seeds!r}")
        if self.views_per_group is not None and (not isinstance(self.views_per_group, int) or self.views_per_group < 1):
            raise ValueError(f"methods[{self.name}].views_per_group: expected a positive integer or null, got "
                             f"{self.views_per_group!r}")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"methods[{self.name}].steps: expected a positive integer, got {self.steps!r}")


def all_reference_methods() -> tuple[str, ...]:
    """The reference rows of every kind of split (synthetic, then real-footage)."""
    from .real_bench import REAL_REFERENCE_METHODS

    return tuple(dict.fromkeys(REFERENCE_METHODS + REAL_REFERENCE_METHODS))


def method_name(model: str) -> str:
    """The row name of a model directory or preset: its directory's name, or the run directory above an exported
    ``final/``."""
    path = Path(model)
    return path.parent.name if path.name == "final" else (path.name or model)


@dataclass
class BenchRun:
    """A results table: a split and the methods to run on it (``configs/bench/results*.yaml``)."""

    split: BenchConfig
    methods: list

    @classmethod
    def from_yaml(cls, path: str | Path) -> BenchRun:
        """A run config (``split:`` a path relative to the file or a mapping, ``methods:`` a list), or a bare split
        config, which runs the methods given on the command line."""
        path = Path(path)
        raw = read_yaml(path, "benchmark config")
        if "methods" not in raw:
            return cls(load_split(path, raw), [])
        if set(raw) - {"split", "methods"}:
            raise ValueError(f"{path}: expected keys split and methods, got {sorted(raw)}")
        split = raw.get("split")
        if isinstance(split, str):
            split = load_split(path.parent / split if not Path(split).is_absolute() else split)
        elif isinstance(split, dict):
            split = load_split(path, split)
        else:
            raise ValueError(f"{path}: split: expected a path or a mapping, got {split!r:.100}")
        methods = raw["methods"]
        if not isinstance(methods, list) or not all(isinstance(m, dict) for m in methods):
            raise ValueError(f"{path}: methods: expected a list of mappings, got {methods!r:.100}")
        known = [f.name for f in fields(MethodSpec)]
        for i, m in enumerate(methods):
            if set(m) - set(known) or "name" not in m:
                raise ValueError(f"{path}: methods[{i}]: expected keys among {known} with name, got "
                                 f"{sorted(map(str, m))}")
        try:
            specs = [MethodSpec(**m) for m in methods]
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        names = [m.name for m in specs]
        if len(set(names)) < len(names):
            raise ValueError(f"{path}: methods: names must be distinct, got {names}")
        return cls(split, specs)


def add_methods(run: BenchRun, references: list[str] = (), models: list[str] = (), seeds: list[int] = (0,),
                steps: int = SAMPLING_STEPS, sensitivity: bool = False) -> BenchRun:
    """``run`` with more rows: reference methods of its split, and model directories or presets (each named by
    ``method_name``, sampled with ``seeds`` and ``steps``); ``ValueError`` for a reference its split has not, no row
    at all, or two rows of one name."""
    for m in references:
        if m not in run.split.reference_methods:
            raise ValueError(f"--method {m}: expected one of {run.split.reference_methods} (the reference rows of "
                             f"split {run.split.name})")
    run.methods += [MethodSpec(m) for m in references] + [
        MethodSpec(method_name(c), model=c, seeds=list(seeds), steps=steps, sensitivity=sensitivity) for c in models]
    if not run.methods:
        raise ValueError("give at least one --checkpoint or --method, or a config with methods:")
    listed = [m.name for m in run.methods]
    if len(set(listed)) < len(listed):
        raise ValueError(f"methods must have distinct names, got {listed}")
    return run


def aggregate_seeds(summaries: list[dict], seeds: list[int], sensitivity: list[dict] | None = None) -> dict:
    """One table row from the summaries of several seeds: each metric's mean over seeds (``mean``), its standard
    deviation over seeds (``seed_std``, with 2+ seeds), camera failures summed, pose AUC averaged; camera
    sensitivity (per clip, all seeds pooled) as its mean ratio and PSNR gain."""
    row = {"seeds": list(seeds), "metrics": {}, "views_scored": sum(s["views_scored"] for s in summaries)}
    for k in sorted({k for s in summaries for k in s["metrics"]}):
        vals = np.array([s["metrics"][k]["mean"] for s in summaries if k in s["metrics"]], np.float64)
        finite = vals[~np.isnan(vals)]
        entry = {"mean": float(finite.mean()) if finite.size else float("nan"),
                 "n": int(sum(s["metrics"][k]["n"] for s in summaries if k in s["metrics"]))}
        if len(summaries) > 1:
            entry["seed_std"] = float(finite.std()) if finite.size else float("nan")
        row["metrics"][k] = entry
    fails = [s["camera_failures"] for s in summaries if "camera_failures" in s]
    if fails:
        failed, attempted = sum(f["failed"] for f in fails), sum(f["attempted"] for f in fails)
        row["camera_failures"] = {"failed": failed, "attempted": attempted, "rate": failed / max(attempted, 1)}
    aucs = [s["pose_auc"] for s in summaries if "pose_auc" in s]
    if aucs:
        row["pose_auc"] = {k: float(np.mean([a[k] for a in aucs])) for k in ("@5", "@10", "@20")}
    if sensitivity:
        for key, out in (("ratio", "cam_sens_ratio"), ("psnr_gain", "cam_psnr_gain")):
            vals = np.array([x[key] for x in sensitivity], np.float64)
            vals = vals[np.isfinite(vals)]
            row["metrics"][out] = {"mean": float(vals.mean()) if vals.size else float("nan"), "n": int(vals.size)}
    return row


def run_bench(
    run: BenchRun,
    out_dir: str | Path,
    settings=None,
    progress=None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, dict]:
    """Run every method of ``run`` on its split, score it (``mvtrack eval``) and write the results table.

    Layout: ``OUT/gt/<split>/`` (the split), ``OUT/<method>/`` (one seed) or ``OUT/<method>/seed_<s>/`` (several),
    each with ``pred/``, ``results.json`` and ``report.html``; ``OUT/summary.md`` the Markdown table (one row per
    method, means over seeds ± their standard deviation) and ``OUT/summary.json`` its rows.

    Args:
        settings: an ``EvalSettings`` (its mode is set from the split: ``joint`` unless re-rendering).
        progress: ``progress(description, total) -> advance()`` or None.
        device, dtype: where and in what precision checkpoints sample (None: the CPU, as saved).

    Returns:
        rows[method name] = the aggregated summary (:func:`aggregate_seeds`).
    """
    from mvtrack.pipelines import MultiViewPipeline

    from .evaluate import EvalSettings, evaluate_dirs
    from .report import markdown_table, write_report

    out = check_output_dir(out_dir)  # a file there: refused before any work
    cfg = run.split
    settings = copy.copy(settings or EvalSettings())
    settings.mode = "rerender" if cfg.observed == "rerender" else "joint"
    total = cfg.num_clips()
    for spec in run.methods:
        if spec.model is None and spec.name not in cfg.reference_methods:
            raise ValueError(f"method {spec.name}: not a reference row of split {cfg.name} (its rows: "
                             f"{', '.join(cfg.reference_methods)})")
    tick = (lambda desc: progress(desc, total)) if progress else (lambda desc: (lambda *a: None))
    gt = cfg.write_ground_truth(out / "gt" / cfg.name, progress=tick(f"ground truth ({cfg.name})"))
    rows = {}
    for spec in run.methods:
        pipe = None
        if spec.model is not None:
            pipe = MultiViewPipeline.from_model(spec.model, dtype, device=device)
            pipe.set_progress_bar_config(disable=True)
        summaries, sens, skipped = [], [], []
        seeds = spec.seeds if spec.model is not None else spec.seeds[:1]  # references: one seed is enough
        for seed in seeds:
            d = out / spec.name / (f"seed_{seed}" if len(seeds) > 1 else "")
            kind = "model" if spec.model is not None else spec.name
            pred = cfg.write_predictions(d / "pred", kind, pipe=pipe, steps=spec.steps, seed=seed,
                                         progress=tick(f"{spec.name} seed {seed}: predicting"),
                                         sensitivity=spec.sensitivity and pipe is not None,
                                         views_per_group=spec.views_per_group, model_dir=spec.model)
            if isinstance(pred, tuple):
                pred, scores = pred
                sens += scores
            advance = tick(f"{spec.name} seed {seed}: scoring")
            result = evaluate_dirs(pred, gt, settings, progress=lambda _: advance())
            result.summary.update(method=spec.name, split=cfg.name, seed=seed)
            if spec.sensitivity and pipe is not None:
                result.summary["camera_sensitivity"] = sens[-total:]
            (d / "results.json").write_text(json.dumps(result.to_json(), indent=1, allow_nan=True))
            write_report(result, d, title=f"mvtrack bench: {spec.name} on {cfg.name}",
                         notes=f"{total} held-out clips; {spec.steps} steps, seed {seed}" if pipe else "")
            summaries.append(result.summary)
            skipped += result.skipped
        rows[spec.name] = aggregate_seeds(summaries, seeds, sens)
        rows[spec.name]["skipped"] = skipped
    out.mkdir(parents=True, exist_ok=True)
    head = f"Split `{cfg.describe()}`; matcher {settings.matcher}.\n\n"
    if cfg.observed == "rerender":  # source | each method | truth, one clip a row (the first seed of each)
        from .real_bench import write_contact_sheet

        firsts = {spec.name: out / spec.name / (f"seed_{spec.seeds[0]}" if spec.model is not None
                                                and len(spec.seeds) > 1 else "") / "pred" for spec in run.methods}
        write_contact_sheet(out / "contact_sheet.png", gt, firsts)
    (out / "summary.md").write_text(head + markdown_table(rows))
    (out / "summary.json").write_text(json.dumps(rows, indent=1, allow_nan=True))
    return rows
