"""Training configuration: dataclasses read from YAML (``base:`` inheritance, ``--set`` items), each field carrying
its constraints (``mvtrack.config``): every unknown key or bad value is named by its dotted key."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

from mvtrack.config import TINY, ConfigError, check_fields, checked, choice, from_mapping, items, load_yaml, ranged
from mvtrack.defaults import CAPTION, TEXT_TOKENS
from mvtrack.models.lora import LORA_TARGETS
from mvtrack.models.sections import EpipolarConfig, TrackConditionerConfig
from mvtrack.scenes.config import BASELINES, LAYOUTS
from mvtrack.tracking.supervision import TrackingConfig

TASKS = ("rerender", "i2v", "joint")
TRACK_SOURCES = ("source_depth", "oracle", "stereo")  # Track2ViewConfig.source
TRAINABLE = ("all", "lora", "recammaster", "track2view", "track4gen")  # see TrainConfig.trainable
LORA_EXPORTS = ("merge", "adapter")  # LoRAConfig.export, export --lora
__all__ = ["ConfigError", "CVDConfig", "DataConfig", "LoRAConfig", "TextConfig", "Track2ViewConfig", "TrainConfig"]


def _tasks(value: dict, key: str) -> None:
    weights = list(value.values())
    if any(t not in TASKS for t in value) or not value or not all(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w >= 0
            for w in weights) or sum(weights) <= 0:
        raise ConfigError(key, f"expected non-negative weights for a subset of {TASKS} with a positive sum, got "
                               f"{value}")


def _nonempty(what: str):
    def check(value: str, key: str) -> None:
        if not value.strip():
            raise ConfigError(key, f"expected {what}, got an empty string")
    return check


def _device(value: str, key: str) -> None:
    if value != "auto":
        import torch

        try:
            torch.device(value)
        except (RuntimeError, TypeError):
            raise ConfigError(key, f"expected auto, cpu or cuda[:N], got {value!r}") from None


def _subset(choices: tuple):
    """A ``check`` for lists of names: a non-empty list of ``choices``."""
    def check(value: list, key: str) -> None:
        if not value:
            raise ConfigError(key, f"expected a non-empty subset of {', '.join(choices)}, got {value!r}")
        items(lambda x: x in choices, f"one of {', '.join(choices)}")(value, key)
    return check


def _names(what: str, nonempty: bool = False):
    def check(value: list, key: str) -> None:
        if (nonempty and not value) or not all(isinstance(x, str) and x for x in value):
            raise ConfigError(key, f"expected {what}, got {value!r}")
    return check


@dataclass
class DataConfig:
    source: str = "synthetic"  # "synthetic" renders on the fly; anything else is a shard directory, file or glob
    views: int = ranged(2, 1, 64)  # views per training sample (the first ``views`` of each clip)
    frames: int = ranged(8, 1, 4096)  # frames per view (the first ``frames`` of each clip)
    height: int = ranged(64, 1, 8192, "an integer in [1, 8192] (pixels)")
    width: int = ranged(64, 1, 8192, "an integer in [1, 8192] (pixels)")
    baseline: str = choice("small", BASELINES)  # synthetic engine: small (3-12 degrees), wide (25-70) or mixed
    num_tracks: int = ranged(16, 1)  # the camera-only objective ignores tracks; few keeps rendering cheap
    query_view: int | None = None  # draw track queries from this view only (0: Track2View's source tracks)
    seed: int = 0  # synthetic engine seed stream (train split)
    render_device: str = "auto"  # where the engine renders: auto = the training device
    # synthetic engine: scene layouts drawn per clip (objects under a sky dome; RealEstate10K-like rooms) and the share
    # of surfaces textured with photographs (scenes/photos.py); the defaults keep the clips of earlier runs
    layouts: list = checked(check=_subset(LAYOUTS), factory=lambda: ["objects"])
    photo_prob: float = ranged(0.0, 0.0, 1.0)
    # shard data: a new order of the clips each pass over them, seeded by ``seed`` and the pass (false: the shards'
    # sorted order, as runs before this option), and the DataLoader worker processes that read and decode this rank's
    # clips ahead of the step (0: in the training process). Workers change speed only, never the batches.
    shuffle: bool = True
    workers: int = ranged(2, 0, 64)

    def __post_init__(self):
        check_fields(self)


@dataclass
class Track2ViewConfig:
    CONFIG_PATH: ClassVar[str] = "track2view"
    # the Track2View conditioner (``TrackConditioner``'s keyword arguments: blocks, width, layers, heads, bands, tokens,
    # pixels, skip, max_token_tracks, frame_positions); None: no conditioner. A model loaded without one (a
    # camera-only checkpoint) gets a zero-initialised one; a model that has one must state it here.
    conditioner: TrackConditionerConfig | None = None
    # paired tracks in training: source_depth (b: the source view's 2D tracks lifted with its own depth, target
    # visibility by z-buffer), oracle (a: the engine's exact 3D tracks and visibility), or stereo (what `generate`
    # gives on a real video: the source view's stereo depth of its own frames, every pixel a track, the scene scaled
    # to the model's depth; data/source_geometry.clip_stereo_tracks)
    source: str = choice("source_depth", TRACK_SOURCES)
    cache: str | None = None  # stereo: a directory keeping each clip's geometry (runs on the same clips share it)
    dropout: float = ranged(0.15, 0.0, 1.0)  # share of samples trained without tracks, so the model also runs camera-only
    # each sample keeps a random share in [min_fraction, 1] of its tracks (sparse tracks)
    min_fraction: float = ranged(0.25, 0.0, 1.0)
    # learning-rate multiplier of the conditioner's parameters: its zero-initialised projections must grow from
    # nothing while the pretrained backbone is only fine-tuned (at 1x, 100 CPU steps left it unused: the loss matched
    # the camera-only control's to 3 digits)
    lr_scale: float = ranged(10.0, TINY)

    def __post_init__(self):
        check_fields(self)


@dataclass
class CVDConfig:
    CONFIG_PATH: ClassVar[str] = "cvd"
    # the model's epipolar attention (mode, blocks, band, decay, cross_frames, coincident, backend; see
    # models.epipolar); None: none. A model loaded without it gets it (module mode starts as a no-op); a model that
    # has it must state it here.
    epipolar: EpipolarConfig | None = None
    # CVD's hybrid training: the share of samples whose views 1.. are replaced by homography pseudo-views of view 0
    # (exact cameras sharing its centre, data.pseudo_views); their epipolar masks use the exact homography band
    pseudo_fraction: float = ranged(0.0, 0.0, 1.0)
    pseudo_degrees: float = ranged(10.0, 0.0, 45.0, "a number of degrees in [0, 45]")  # largest yaw / pitch
    pseudo_zoom: float = ranged(0.15, 0.0, 0.5)  # largest relative zoom of a pseudo-view
    # learning-rate multiplier of the cross-view modules (module mode), for the reason of track2view.lr_scale: a
    # zero-initialised output must grow from nothing while the pretrained backbone is only fine-tuned
    lr_scale: float = ranged(10.0, TINY)

    def __post_init__(self):
        check_fields(self)


@dataclass
class TextConfig:
    """Prompts of a model with a text encoder (a Wan2.1 root's ``text_encoder/`` + ``tokenizer/``); ignored by
    text-free models, which condition on their learned null context."""

    # the caption of clips that carry none (``meta["caption"]``): every synthetic engine clip
    default_caption: str = CAPTION
    # share of samples trained with the empty prompt, so that the model also learns the unconditional prediction
    # that classifier-free guidance subtracts (10%: the usual rate for text-to-video fine-tuning)
    dropout: float = ranged(0.1, 0.0, 1.0)
    max_length: int = ranged(TEXT_TOKENS, 1)  # tokens per prompt (Wan2.1's)
    # where UMT5 runs: auto = the training device; cpu keeps its weights (11 GiB in bf16 for Wan2.1's UMT5-XXL) off
    # the GPU (each distinct prompt is encoded once and cached, so a fixed set of captions costs little time there)
    device: str = checked("auto", _device)

    def __post_init__(self):
        check_fields(self)


@dataclass
class LoRAConfig:
    """LoRA adapters on the frozen backbone's blocks (``trainable: lora`` or ``track2view``; peft)."""

    rank: int = ranged(32, 1)  # DiffSynth-Studio's Wan LoRA default
    alpha: float | None = ranged(None, TINY, what="a number > 0 or null")  # scale alpha / rank; None: alpha = rank
    dropout: float = ranged(0.0, 0.0, 0.99, "a number in [0, 1)")
    # suffixes of the linear layers inside wan.blocks that get adapters (models.lora.LORA_TARGETS: attention q, k, v,
    # out of self- and cross-attention, and the feed-forward layers)
    targets: list = checked(check=_names("linear-layer name suffixes", nonempty=True),
                            factory=lambda: list(LORA_TARGETS))
    # how final/ is written: merge (LoRA folded into the weights: a self-contained model) or adapter (the adapters and
    # the trained modules only, with the base model referred to by path)
    export: str = choice("merge", LORA_EXPORTS)

    def __post_init__(self):
        check_fields(self)


@dataclass
class TrainConfig:
    # a preset (tiny, S, B) or a local directory (mvtrack save_pretrained, or a Wan2.1 diffusers root)
    model: str = checked("S", _nonempty("a preset name or a model directory"))
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
    trainable: str = choice("all", TRAINABLE)
    # parameter-name prefixes trained fully beyond the preset
    also_train: list = checked(check=_names("parameter-name prefixes"), factory=list)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    text: TextConfig = field(default_factory=TextConfig)  # prompts, for a model with a text encoder
    # dtype of every frozen weight (the backbone under LoRA or a partial preset): bfloat16 halves its memory; Wan's
    # float32 modules (norms, time embedder, modulation tables) stay float32, trained parameters are float32 for AdamW.
    # bfloat16 needs mixed_precision bf16 (auto on CUDA).
    weight_dtype: str = choice("float32", ("float32", "bfloat16"))
    # probability of each observed/generated layout: rerender = view 0 observed; i2v = frame 0 of view 0
    # observed; joint = nothing observed
    tasks: dict = checked(check=_tasks, factory=lambda: {"rerender": 0.7, "i2v": 0.2, "joint": 0.1})
    batch_size: int = ranged(2, 1)  # clips per process and micro-step
    grad_accum: int = ranged(1, 1)
    max_steps: int = ranged(1000, 1)  # optimizer steps
    lr: float = ranged(2e-4, TINY)
    weight_decay: float = ranged(0.0, 0.0)
    warmup_steps: int = ranged(100, 0)
    lr_schedule: str = choice("cosine", ("cosine", "constant"))  # cosine (to min_lr_ratio * lr) after linear warm-up
    min_lr_ratio: float = ranged(0.1, 0.0, 1.0)
    grad_clip: float = ranged(1.0, TINY)
    ema_decay: float = ranged(0.999, 0.0, 1.0 - 1e-12, "a number in [0, 1)")
    # sigma = shift * u / (1 + (shift - 1) u) with u ~ U(0, 1): Wan's shifted flow-matching schedule; larger
    # shifts spend more steps at high noise, which high resolutions need
    flow_shift: float = ranged(3.0, TINY)
    # network output of a fresh preset: velocity (Wan's) or sample (x_0, converted to velocity in the model;
    # pixel-space models with 8x8 patches learn much faster this way, see MultiViewTransformer)
    prediction_type: str = choice("velocity", ("velocity", "sample"))
    # velocity: MSE of the velocity (Wan's); sample: MSE of the implied x_0 (sigma^2-weighted velocity error)
    loss_space: str = choice("velocity", ("velocity", "sample"))
    mixed_precision: str = choice("auto", ("auto", "no", "bf16", "fp16"))  # auto = bf16 on CUDA, fp32 (no) on CPU
    gradient_checkpointing: bool = False
    seed: int = 0  # noise and task sampling: step s of rank r draws from seed (seed, s, r)
    output_dir: str = checked("outputs/train", _nonempty("a directory path"))
    checkpoint_every: int = ranged(250, 1)
    keep_checkpoints: int = ranged(2, 1)
    log_every: int = ranged(10, 1)
    tensorboard: bool = False

    def __post_init__(self):
        check_fields(self)

    @classmethod
    def from_yaml(cls, path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
        """Read a YAML config (``base:`` chains resolved); ``overrides`` are ``key=value`` strings (``data.frames=4``),
        values parsed as YAML. Errors are one line naming the file, the key and the ``--set`` item."""
        return load_yaml(cls, path, overrides)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """The config ``to_dict`` wrote (e.g. a checkpoint's ``trainer.json``), with every value checked again."""
        return from_mapping(cls, values)

    def to_dict(self) -> dict:
        return asdict(self)
