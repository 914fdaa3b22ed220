"""One training run from a config, as ``mvtrack train`` runs it."""

from __future__ import annotations

from mvtrack.outputs import check_output_dir

from .config import TrainConfig
from .trainer import Trainer


def train_run(config: TrainConfig, resume: bool = True) -> dict:
    """Train ``config`` to its ``max_steps`` (resuming from the latest checkpoint in ``output_dir`` unless ``resume``
    is False) and export ``output_dir/final``; returns the last logged metrics. The processes' communication is
    closed at the end, also on failure (else ranks can abort at exit)."""
    check_output_dir(config.output_dir, "output_dir")
    trainer = Trainer(config, resume=resume)
    try:
        return trainer.train()
    finally:
        trainer.accelerator.end_training()  # join gloo/NCCL threads before exit
