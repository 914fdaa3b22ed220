"""Training: configs, the rectified-flow objective, EMA, checkpoints and the Accelerate trainer."""

from .checkpoint import export_checkpoint, find_checkpoint, load_checkpoint, save_checkpoint
from .config import DataConfig, TrainConfig
from .ema import EMA
from .flow import add_noise, flow_loss, sample_observed, shifted_sigmas
from .run import train_run
from .trainer import Trainer, step_generator

__all__ = [
    "EMA",
    "DataConfig",
    "TrainConfig",
    "Trainer",
    "add_noise",
    "export_checkpoint",
    "find_checkpoint",
    "flow_loss",
    "load_checkpoint",
    "sample_observed",
    "save_checkpoint",
    "shifted_sigmas",
    "step_generator",
    "train_run",
]
