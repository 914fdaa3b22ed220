"""Training configuration: dataclasses read from YAML, with every unknown key or bad value named."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from mvtrack.tracking.supervision import TrackingConfig

TASKS = ("rerender", "i2v", "joint")


@dataclass
class DataConfig:
    source: str = "synthetic"  # "synthetic" renders on the fly; anything else is a shard directory, file or glob
    views: int = 2  # views per training sample (the first ``views`` of each clip)
    frames: int = 8  # frames per view (the first ``frames`` of each clip)
    height: int = 64
    width: int = 64
    baseline: str = "small"  # synthetic engine: small (3-12 degrees), wide or mixed
    num_tracks: int = 16  # the camera-only objective ignores tracks; few keeps rendering cheap
    seed: int = 0  # synthetic engine seed stream (train split)
    render_device: str = "auto"  # where the engine renders: auto = the training device


@dataclass
class TrainConfig:
    model: str = "S"  # a preset (tiny, S, B) or a local directory (mvtrack save_pretrained, or a Wan2.1 diffusers root)
    data: DataConfig = field(default_factory=DataConfig)
    # track supervision: MVTrack4Gen (tracking.layers), Track4Gen (tracking.refiner_block); off by default
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
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
        if isinstance(self.data, dict):
            self.data = _from_dict(DataConfig, self.data, "data")
        if isinstance(self.tracking, dict):
            self.tracking = _from_dict(TrackingConfig, self.tracking, "tracking")
        for name in ("batch_size", "grad_accum", "max_steps", "checkpoint_every", "keep_checkpoints", "log_every"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name}: expected a positive integer, got {getattr(self, name)!r}")
        unknown = set(self.tasks) - set(TASKS)
        if unknown or not self.tasks or min(self.tasks.values()) < 0 or sum(self.tasks.values()) <= 0:
            raise ValueError(
                f"TrainConfig.tasks: expected non-negative weights for a subset of {TASKS}, got {self.tasks}"
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"TrainConfig.lr_schedule: expected cosine or constant, got {self.lr_schedule!r}")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ValueError(
                f"TrainConfig.mixed_precision: expected auto, no, bf16 or fp16, got {self.mixed_precision!r}"
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"TrainConfig.ema_decay: expected a value in [0, 1), got {self.ema_decay}")
        if self.prediction_type not in ("velocity", "sample"):
            raise ValueError(f"TrainConfig.prediction_type: expected velocity or sample, got {self.prediction_type!r}")
        if self.loss_space not in ("velocity", "sample"):
            raise ValueError(f"TrainConfig.loss_space: expected velocity or sample, got {self.loss_space!r}")
        if self.flow_shift <= 0:
            raise ValueError(f"TrainConfig.flow_shift: expected > 0, got {self.flow_shift}")
        if self.data.views < 1 or self.data.frames < 1:
            raise ValueError(
                f"TrainConfig.data: expected views and frames >= 1, got {self.data.views}, {self.data.frames}"
            )

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        """Read a YAML config; ``overrides`` are ``key=value`` strings (``data.frames=4``), values parsed as YAML."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"training config: no file at {path}")
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping at the top level, got {type(raw).__name__}")
        for item in overrides or []:
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"override {item!r}: expected key=value")
            target = raw
            *parents, leaf = key.split(".")
            for p in parents:
                target = target.setdefault(p, {})
            target[leaf] = yaml.safe_load(value)
        return _from_dict(cls, raw, str(path))

    def to_dict(self) -> dict:
        return asdict(self)


def _from_dict(cls, raw: dict, where: str):
    names = {f.name for f in fields(cls)}
    unknown = set(raw) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; expected some of {sorted(names)}")
    raw = dict(raw)
    for f in fields(cls):  # YAML 1.1 reads 3e-3 (no dot) as a string: accept it where a float is expected
        if f.name in raw and isinstance(raw[f.name], str) and isinstance(f.default, float):
            try:
                raw[f.name] = float(raw[f.name])
            except ValueError:
                raise ValueError(f"{where}: {f.name} expected a number, got {raw[f.name]!r}") from None
    return cls(**raw)
