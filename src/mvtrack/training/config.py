"""Training configuration: dataclasses read from YAML, with every unknown key or bad value named."""

from __future__ import annotations

import math
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import torch
import yaml

from mvtrack.defaults import CAPTION, TEXT_TOKENS
from mvtrack.models.lora import LORA_TARGETS
from mvtrack.scenes.config import BASELINES
from mvtrack.tracking.supervision import PAIR_KINDS, TrackingConfig

TASKS = ("rerender", "i2v", "joint")
TRACK_SOURCES = ("source_depth", "oracle", "stereo")
TRAINABLE = ("all", "lora", "recammaster", "track2view", "track4gen")  # see TrainConfig.trainable


class ConfigError(ValueError):
    """A bad configuration value; ``key`` is its dotted path (``TrainConfig.data.seed``)."""

    def __init__(self, key: str, message: str, keys: list[str] | None = None):
        super().__init__(f"{key}: {message}")
        self.key = key
        self.keys = keys or [key]  # the full paths at fault (the unknown ones, for unknown keys)


@dataclass
class DataConfig:
    source: str = "synthetic"  # "synthetic" renders on the fly; anything else is a shard directory, file or glob
    views: int = 2  # views per training sample (the first ``views`` of each clip)
    frames: int = 8  # frames per view (the first ``frames`` of each clip)
    height: int = 64
    width: int = 64
    baseline: str = "small"  # synthetic engine: small (3-12 degrees), wide or mixed
    num_tracks: int = 16  # the camera-only objective ignores tracks; few keeps rendering cheap
    query_view: int | None = None  # draw track queries from this view only (0: Track2View's source tracks)
    seed: int = 0  # synthetic engine seed stream (train split)
    render_device: str = "auto"  # where the engine renders: auto = the training device
    # synthetic engine: scene layouts drawn per clip (objects under a sky dome; RealEstate10K-like rooms) and the share
    # of surfaces textured with photographs (scenes/photos.py); the defaults keep the clips of earlier runs
    layouts: tuple = ("objects",)
    photo_prob: float = 0.0

    def __post_init__(self):
        _validate_in_place(self, "DataConfig")


@dataclass
class Track2ViewConfig:
    # keyword arguments of models.TrackConditioner (blocks, width, layers, heads, bands, tokens, pixels); None: no
    # conditioner. A model loaded without one (a camera-only checkpoint) gets a zero-initialised one.
    conditioner: dict | None = None
    # paired tracks in training: source_depth (b: the source view's 2D tracks lifted with its own depth, target
    # visibility by z-buffer), oracle (a: the engine's exact 3D tracks and visibility), or stereo (what `generate`
    # gives on a real video: the source view's stereo depth of its own frames, every pixel a track, the scene scaled
    # to the model's depth; data/source_geometry.clip_stereo_tracks)
    source: str = "source_depth"
    cache: str | None = None  # stereo: a directory keeping each clip's geometry (runs on the same clips share it)
    dropout: float = 0.15  # share of samples trained without tracks, so the model also runs camera-only
    min_fraction: float = 0.25  # each sample keeps a random share in [min_fraction, 1] of its tracks (sparse tracks)
    # learning-rate multiplier of the conditioner's parameters: its zero-initialised projections must grow from
    # nothing while the pretrained backbone is only fine-tuned (at 1x, 100 CPU steps left it unused: the loss matched
    # the camera-only control's to 3 digits)
    lr_scale: float = 10.0

    def __post_init__(self):
        if self.source not in TRACK_SOURCES:
            raise ValueError(f"track2view.source: expected one of {TRACK_SOURCES}, got {self.source!r}")
        if self.conditioner is not None and not isinstance(self.conditioner, dict):
            raise ValueError(f"track2view.conditioner: expected a mapping or null, got {self.conditioner!r}")
        for name in ("dropout", "min_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"track2view.{name}: expected a number in [0, 1], got {value!r}")
        if not isinstance(self.lr_scale, (int, float)) or not self.lr_scale > 0:
            raise ValueError(f"track2view.lr_scale: expected a number > 0, got {self.lr_scale!r}")


@dataclass
class CVDConfig:
    # keyword arguments of the model's epipolar attention (mode, blocks, band, decay, cross_frames, coincident,
    # backend; see models.epipolar); None: none. A model loaded without it gets it (module mode starts as a no-op).
    epipolar: dict | None = None
    # CVD's hybrid training: the share of samples whose views 1.. are replaced by homography pseudo-views of view 0
    # (exact cameras sharing its centre, data.pseudo_views); their epipolar masks use the exact homography band
    pseudo_fraction: float = 0.0
    pseudo_degrees: float = 10.0  # largest yaw / pitch of a pseudo-view (degrees)
    pseudo_zoom: float = 0.15  # largest relative zoom of a pseudo-view
    # learning-rate multiplier of the cross-view modules (module mode), for the reason of track2view.lr_scale: a
    # zero-initialised output must grow from nothing while the pretrained backbone is only fine-tuned
    lr_scale: float = 10.0

    def __post_init__(self):
        if self.epipolar is not None and not isinstance(self.epipolar, dict):
            raise ValueError(f"cvd.epipolar: expected a mapping or null, got {self.epipolar!r}")
        if not isinstance(self.pseudo_fraction, (int, float)) or not 0.0 <= self.pseudo_fraction <= 1.0:
            raise ValueError(f"cvd.pseudo_fraction: expected a number in [0, 1], got {self.pseudo_fraction!r}")


@dataclass
class TextConfig:
    """Prompts of a model with a text encoder (a Wan2.1 root's ``text_encoder/`` + ``tokenizer/``); ignored by
    text-free models, which condition on their learned null context."""

    # the caption of clips that carry none (``meta["caption"]``): every synthetic engine clip
    default_caption: str = CAPTION
    # share of samples trained with the empty prompt, so that the model also learns the unconditional prediction
    # that classifier-free guidance subtracts (10%: the usual rate for text-to-video fine-tuning)
    dropout: float = 0.1
    max_length: int = TEXT_TOKENS  # tokens per prompt (Wan2.1's)
    # where UMT5 runs: auto = the training device; cpu keeps its weights (11 GiB in bf16 for Wan2.1's UMT5-XXL) off
    # the GPU (each distinct prompt is encoded once and cached, so a fixed set of captions costs little time there)
    device: str = "auto"

    def __post_init__(self):
        _validate_in_place(self, "TextConfig")


@dataclass
class LoRAConfig:
    """LoRA adapters on the frozen backbone's blocks (``trainable: lora`` or ``track2view``; peft)."""

    rank: int = 32  # DiffSynth-Studio's Wan LoRA default
    alpha: float | None = None  # the adapters' scale is alpha / rank; None: alpha = rank (scale 1)
    dropout: float = 0.0
    # suffixes of the linear layers inside wan.blocks that get adapters (models.lora.LORA_TARGETS: attention q, k, v,
    # out of self- and cross-attention, and the feed-forward layers)
    targets: list = field(default_factory=lambda: list(LORA_TARGETS))
    # how final/ is written: merge (LoRA folded into the weights: a self-contained model) or adapter (the adapters and
    # the trained modules only, with the base model referred to by path)
    export: str = "merge"

    def __post_init__(self):
        _validate_in_place(self, "LoRAConfig")


@dataclass
class TrainConfig:
    model: str = "S"  # a preset (tiny, S, B) or a local directory (mvtrack save_pretrained, or a Wan2.1 diffusers root)
    data: DataConfig = field(default_factory=DataConfig)
    # track supervision: MVTrack4Gen (tracking.layers), Track4Gen (tracking.refiner_block); off by default
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    # Track2View: paired-track conditioning (track2view.conditioner); off by default
    track2view: Track2ViewConfig = field(default_factory=Track2ViewConfig)
    # CVD: epipolar cross-view attention (cvd.epipolar), homography pseudo-views (cvd.pseudo_fraction); off by default
    cvd: CVDConfig = field(default_factory=CVDConfig)
    # what trains (training.model.TRAINABLE): all; lora (LoRA on the frozen backbone + every new module: camera
    # encoder, track conditioner, refiner, cross-view attention); recammaster (camera encoder and its projections +
    # every block's self-attention, ReCamMaster's set); track2view (LoRA + the track conditioner and camera encoder);
    # track4gen (every block's self-attention, the refiner and its zero conv, Track4Gen's set)
    trainable: str = "all"
    also_train: list = field(default_factory=list)  # parameter-name prefixes trained fully beyond the preset
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    text: TextConfig = field(default_factory=TextConfig)  # prompts, for a model with a text encoder
    # dtype of every frozen weight (the backbone under LoRA or a partial preset): bfloat16 halves its memory; Wan's
    # float32 modules (norms, time embedder, modulation tables) stay float32, trained parameters are float32 for AdamW.
    # bfloat16 needs mixed_precision bf16 (auto on CUDA).
    weight_dtype: str = "float32"
    # probability of each observed/generated layout: rerender = view 0 observed; i2v = frame 0 of view 0
    # observed; joint = nothing observed
    tasks: dict = field(default_factory=lambda: {"rerender": 0.7, "i2v": 0.2, "joint": 0.1})
    batch_size: int = 2  # clips per process and micro-step
    grad_accum: int = 1
    max_steps: int = 1000  # optimizer steps
    lr: float = 2e-4
    weight_decay: float = 0.0
    warmup_steps: int = 100
    lr_schedule: str = "cosine"  # cosine (to min_lr_ratio * lr) or constant, after linear warm-up
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    # sigma = shift * u / (1 + (shift - 1) u) with u ~ U(0, 1): Wan's shifted flow-matching schedule; larger
    # shifts spend more steps at high noise, which high resolutions need
    flow_shift: float = 3.0
    # network output of a fresh preset: velocity (Wan's) or sample (x_0, converted to velocity in the model;
    # pixel-space models with 8x8 patches learn much faster this way, see MultiViewTransformer)
    prediction_type: str = "velocity"
    # velocity: MSE of the velocity (Wan's); sample: MSE of the implied x_0 (sigma^2-weighted velocity error)
    loss_space: str = "velocity"
    mixed_precision: str = "auto"  # auto = bf16 on CUDA, fp32 (no) on CPU; or no / bf16 / fp16
    gradient_checkpointing: bool = False
    seed: int = 0  # noise and task sampling: step s of rank r draws from seed (seed, s, r)
    output_dir: str = "outputs/train"
    checkpoint_every: int = 250
    keep_checkpoints: int = 2
    log_every: int = 10
    tensorboard: bool = False

    def __post_init__(self):
        _validate_in_place(self, "TrainConfig")

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        """Read a YAML config; ``overrides`` are ``key=value`` strings (``data.frames=4``), values parsed as YAML."""
        path = Path(path)
        raw = _read_yaml(path, [])
        given = {}  # dotted key -> the --set item that gave it
        for item in overrides or []:
            key, sep, value = item.partition("=")
            *parents, leaf = key.strip().split(".")
            if not sep or not all(parents) or not leaf:
                raise ValueError(f"--set {item}: expected key=value (e.g. max_steps=100 or data.frames=4)")
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError as e:
                raise ValueError(f"--set {item}: the value is not valid YAML ({_yaml_problem(e)})") from None
            target = raw
            for i, p in enumerate(parents):
                target = target.setdefault(p, {})
                if not isinstance(target, dict):
                    section = ".".join(parents[: i + 1])
                    raise ValueError(f"--set {item}: {section} holds the value {target!r}, not a section of keys")
            target[leaf] = parsed
            given["TrainConfig." + key.strip()] = item
        try:
            return _from_dict(cls, raw, "TrainConfig")
        except ConfigError as e:
            hits = [v for k, v in given.items() if any(x == k or x.startswith(k + ".") for x in e.keys)]
            source = f" (from --set {hits[0]})" if hits else ""
            raise ValueError(f"{path}: {e}{source}") from None

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config ``to_dict`` wrote (e.g. a checkpoint's ``trainer.json``), with every value checked again."""
        return _from_dict(cls, values, "TrainConfig")

    def to_dict(self) -> dict:
        return asdict(self)


def _read_yaml(path: Path, seen: list[Path]) -> dict:
    """A config file's mapping, on top of the file its ``base:`` key names (relative to it; sections are merged
    key by key, so a variant states only what it changes)."""
    if not path.is_file():
        raise FileNotFoundError(f"training config: no file at {path}" + (f" (base: of {seen[-1]})" if seen else ""))
    if path.resolve() in seen:
        raise ValueError(f"{path}: base: chain loops back to itself")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (expected YAML)") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str):
        raise ValueError(f"{path}: base: expected the path of another config, got {base!r}")
    return _merge(_read_yaml(path.parent / base, [*seen, path.resolve()]), raw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "tasks" else v
    return out


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{getattr(e, 'problem', None) or type(e).__name__}{where}"


# Allowed values beyond the type: key -> (lowest, highest, what to say). Bounds are inclusive; None = open.
# Positive floats use a tiny lowest value; lr = 0 or flow_shift = 0 would train nothing or divide by zero.
_TINY = 1e-300
_RANGES = {
    "DataConfig": {
        "views": (1, 64, "an integer in [1, 64]"),
        "frames": (1, 4096, "an integer in [1, 4096]"),
        "height": (1, 8192, "an integer in [1, 8192] (pixels)"),
        "width": (1, 8192, "an integer in [1, 8192] (pixels)"),
        "num_tracks": (1, None, "an integer >= 1"),
        "photo_prob": (0.0, 1.0, "a number in [0, 1]"),
    },
    "TrainConfig": {
        **{k: (1, None, "an integer >= 1") for k in
           ("batch_size", "grad_accum", "max_steps", "checkpoint_every", "keep_checkpoints", "log_every")},
        "lr": (_TINY, None, "a number > 0"),
        "weight_decay": (0.0, None, "a number >= 0"),
        "warmup_steps": (0, None, "an integer >= 0"),
        "min_lr_ratio": (0.0, 1.0, "a number in [0, 1]"),
        "grad_clip": (_TINY, None, "a number > 0"),
        "flow_shift": (_TINY, None, "a number > 0"),
    },
    "Track2ViewConfig": {"lr_scale": (_TINY, None, "a number > 0")},
    "TextConfig": {"dropout": (0.0, 1.0, "a number in [0, 1]"), "max_length": (1, None, "an integer >= 1")},
    "LoRAConfig": {"rank": (1, None, "an integer >= 1"), "alpha": (_TINY, None, "a number > 0 or null"),
                   "dropout": (0.0, 0.99, "a number in [0, 1)")},
    "CVDConfig": {
        "pseudo_fraction": (0.0, 1.0, "a number in [0, 1]"),
        "pseudo_degrees": (0.0, 45.0, "a number of degrees in [0, 45]"),
        "pseudo_zoom": (0.0, 0.5, "a number in [0, 0.5]"),
        "lr_scale": (_TINY, None, "a number > 0"),
    },
    "TrackingConfig": {
        "corr_weight": (0.0, None, "a number >= 0"),
        "track_weight": (0.0, None, "a number >= 0"),
        "refiner_weight": (0.0, None, "a number >= 0"),
        "pairs": (1, None, "an integer >= 1"),
        "head_levels": (1, None, "an integer >= 1"),
        "head_radius": (0, None, "an integer >= 0"),
        "head_iters": (1, None, "an integer >= 1"),
        "refiner_block": (0, None, "a block index >= 0 or null"),
        "refiner_radius": (_TINY, None, "a number > 0"),
        "refiner_temperature": (_TINY, None, "a number > 0"),
    },
}
_CHOICES = {
    ("DataConfig", "baseline"): BASELINES,
    ("TrainConfig", "lr_schedule"): ("cosine", "constant"),
    ("TrainConfig", "mixed_precision"): ("auto", "no", "bf16", "fp16"),
    ("TrainConfig", "prediction_type"): ("velocity", "sample"),
    ("TrainConfig", "loss_space"): ("velocity", "sample"),
    ("TrainConfig", "trainable"): TRAINABLE,
    ("TrainConfig", "weight_dtype"): ("float32", "bfloat16"),
    ("LoRAConfig", "export"): ("merge", "adapter"),
}
_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string", dict: "a mapping",
               list: "a list"}


def _coerce(value, hint, key: str):
    """``value`` as type ``hint`` (a class, ``X | None`` or a config dataclass); ``ConfigError`` naming ``key``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        hint = args[0]
    if is_dataclass(hint):
        if isinstance(value, hint):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a section of keys ({', '.join(f.name for f in fields(hint))}), "
                                   f"got {value!r}")
        return _from_dict(hint, value, key)
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(key, f"expected a finite number, got {value!r}")
        return float(value)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(key, f"expected an integer, got {value!r}")
    if hint is list and isinstance(value, tuple):
        value = list(value)
    if hint in _TYPE_WORDS and not isinstance(value, hint):
        raise ConfigError(key, f"expected {_TYPE_WORDS[hint]}, got {value!r}")
    return value


def _check_values(cls, values: dict, key: str) -> None:
    """Ranges and choices of one config class's (already typed) values."""
    name = cls.__name__
    for k, (lo, hi, what) in _RANGES.get(name, {}).items():
        v = values.get(k)
        if v is not None and ((lo is not None and v < lo) or (hi is not None and v > hi)):
            raise ConfigError(f"{key}.{k}", f"expected {what}, got {v!r}")
    for (owner, k), choices in _CHOICES.items():
        if owner == name and k in values and values[k] not in choices:
            raise ConfigError(f"{key}.{k}", f"expected one of {', '.join(choices)}, got {values[k]!r}")
    if name == "TrainConfig" and "tasks" in values:
        tasks = values["tasks"]
        bad = [t for t in tasks if t not in TASKS]
        weights = list(tasks.values())
        if bad or not tasks or not all(isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w)
                                       and w >= 0 for w in weights) or sum(weights) <= 0:
            raise ConfigError(f"{key}.tasks", f"expected non-negative weights for a subset of {TASKS} with a "
                                              f"positive sum, got {tasks}")
    if name == "TrainConfig" and not str(values.get("output_dir", "x")).strip():
        raise ConfigError(f"{key}.output_dir", "expected a directory path, got an empty string")
    if name == "TrainConfig" and not str(values.get("model", "x")).strip():
        raise ConfigError(f"{key}.model", "expected a preset name or a model directory, got an empty string")
    if name == "TrainConfig" and not all(isinstance(x, str) and x for x in values.get("also_train", [])):
        raise ConfigError(f"{key}.also_train", f"expected parameter-name prefixes, got {values['also_train']!r}")
    if name == "LoRAConfig" and "targets" in values and not (values["targets"] and all(isinstance(x, str) and x for x in values["targets"])):
        raise ConfigError(f"{key}.targets", f"expected linear-layer name suffixes, got {values.get('targets')!r}")
    if name == "TextConfig" and values.get("device", "auto") != "auto":
        try:
            torch.device(values["device"])
        except (RuntimeError, TypeError):
            raise ConfigError(f"{key}.device", f"expected auto, cpu or cuda[:N], got {values['device']!r}") from None
    if name == "TrainConfig" and values.get("ema_decay") is not None and not 0.0 <= values["ema_decay"] < 1.0:
        raise ConfigError(f"{key}.ema_decay", f"expected a number in [0, 1), got {values['ema_decay']!r}")
    if name == "TrackingConfig":
        for k in ("layers", "kinds"):
            items = values.get(k) or []
            for i, item in enumerate(items):
                ok = (isinstance(item, int) and not isinstance(item, bool) and item >= 0) if k == "layers" else (
                    item in PAIR_KINDS)
                if not ok:
                    what = "block indices >= 0" if k == "layers" else f"names among {PAIR_KINDS}"
                    raise ConfigError(f"{key}.{k}[{i}]", f"expected {what}, got {item!r}")


def _typed(cls, values: dict, key: str) -> dict:
    hints = typing.get_type_hints(cls)
    out = {k: _coerce(v, hints[k], f"{key}.{k}") for k, v in values.items()}
    _check_values(cls, out, key)
    return out


def _validate_in_place(obj, key: str) -> None:
    for k, v in _typed(type(obj), {f.name: getattr(obj, f.name) for f in fields(obj)}, key).items():
        setattr(obj, k, v)


def _from_dict(cls, raw: dict, where: str):
    """``cls(**raw)`` after rejecting unknown keys and checking every value's type and range."""
    names = [f.name for f in fields(cls)]
    unknown = set(raw) - set(names)
    if unknown:
        unknown = sorted(map(str, unknown))
        raise ConfigError(where, f"unknown keys {unknown}; expected some of {sorted(names)}",
                          [f"{where}.{k}" for k in unknown])
    return cls(**_typed(cls, dict(raw), where))
