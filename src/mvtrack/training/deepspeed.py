"""Checkpoints under DeepSpeed ZeRO: the engine's own files for the weights and optimizer (its partitions; DeepSpeed
pickles them, so resume only checkpoints you wrote), and beside them, in safetensors, the EMA of each rank
(ZeRO-3: its partitions) and the buffers, from which ``export`` rebuilds full weights without DeepSpeed.

They resume under DeepSpeed on the same number of processes (DeepSpeed's ``ds_to_universal`` converts them for
another; not wired here).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ENGINE_DIR, TAG = "deepspeed", "state"


def _ema_file(rank: int) -> str:
    return f"ema-rank{rank:05d}.safetensors"


def save_deepspeed(directory: Path, engine, ema, model, rank: int) -> dict:
    """Write the engine's checkpoint and this rank's EMA under ``directory`` (a collective); returns what
    ``trainer.json`` records of it (ZeRO stage, full shapes of the partitioned averages)."""
    engine.save_checkpoint(str(directory / ENGINE_DIR), tag=TAG, save_latest=False)
    stage = int(engine.zero_optimization_stage())
    if stage == 3 or rank == 0:  # below ZeRO-3 every rank holds the same full averages
        save_file({k: v.detach().cpu().contiguous() for k, v in ema.shadow.items()}, directory / _ema_file(rank))
    if rank == 0:  # the persistent ones (those a state dict holds; Wan's rotary tables are rebuilt)
        saved = set(model.state_dict())
        save_file({k: b.detach().cpu().contiguous() for k, b in model.named_buffers() if k in saved},
                  directory / "buffers.safetensors")
    params = dict(model.named_parameters())
    shapes = {k: list(getattr(params[k], "ds_shape", params[k].shape)) for k in ema.shadow}
    return {"zero_stage": stage, "ema_shapes": shapes}


def load_deepspeed(checkpoint: Path, trainer: dict, engine, ema, acc) -> None:
    """Restore what ``save_deepspeed`` wrote into a DeepSpeed run on the same number of processes."""
    if trainer.get("processes") != acc.num_processes:
        raise ValueError(f"resume from {checkpoint}: written by {trainer.get('processes')} DeepSpeed processes, this "
                         f"run has {acc.num_processes}; DeepSpeed checkpoints resume on the same number")
    stage = int(engine.zero_optimization_stage())
    if trainer.get("zero_stage") != stage:
        raise ValueError(f"resume from {checkpoint}: written under ZeRO-{trainer.get('zero_stage')}, this run is "
                         f"ZeRO-{stage}")
    path, _ = engine.load_checkpoint(str(checkpoint / ENGINE_DIR), tag=TAG, load_optimizer_states=True,
                                     load_lr_scheduler_states=False)
    if path is None:
        raise ValueError(f"resume from {checkpoint}: DeepSpeed found no checkpoint in {checkpoint / ENGINE_DIR}")
    rank = acc.process_index if stage == 3 else 0
    ema.load_state_dict(load_file(checkpoint / _ema_file(rank)), trainer["ema_updates"])


def read_deepspeed_weights(checkpoint: Path, trainer: dict) -> tuple[dict, dict]:
    """``(ema, buffers)`` as full CPU tensors, without DeepSpeed: ZeRO-3's flat partitions are concatenated in rank
    order and cut to each parameter's size (DeepSpeed pads only the last partition)."""
    buffers = load_file(checkpoint / "buffers.safetensors")
    if trainer.get("zero_stage") != 3:
        return load_file(checkpoint / _ema_file(0)), buffers
    parts = [load_file(checkpoint / _ema_file(r)) for r in range(trainer["processes"])]
    ema = {}
    for k, shape in trainer["ema_shapes"].items():
        flat = torch.cat([p[k].flatten() for p in parts])
        ema[k] = flat[: math.prod(shape)].view(shape).clone()
    return ema, buffers
