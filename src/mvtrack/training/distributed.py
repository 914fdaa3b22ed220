"""How the trainer runs over processes: the Accelerator of a launch (single, DDP, FSDP2, DeepSpeed ZeRO), made to
shard on CPU processes too, and the checks that it did.

``accelerate launch --config_file configs/accelerate/<ddp|fsdp2|zero2|zero3_offload>.yaml`` picks the strategy
through the environment (``ACCELERATE_USE_FSDP``, ``ACCELERATE_USE_DEEPSPEED``). Accelerate 1.16 applies FSDP only on
accelerators and DeepSpeed only with CUDA: on CPU processes (gloo) it silently falls back to DDP, or to one process per
rank that each believes it is alone. Both strategies run on CPU all the same (torch's FSDP2 and DeepSpeed's CPU
accelerator speak gloo), so ``make_accelerator`` restores the requested strategy there: that is how the 2-process CPU
tests exercise the sharded code paths, and a launch that asked for sharding never trains unsharded.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, PartialState
from accelerate.utils import DistributedType

STRATEGIES = ("single", "ddp", "fsdp2", "deepspeed")


def requested_strategy() -> str:
    """The strategy the launch asked for (from Accelerate's environment), before any Accelerator exists."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
        return "deepspeed"
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true":
        return "fsdp2"
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return "ddp" if world > 1 else "single"


def make_accelerator(mixed_precision: str, grad_accum: int) -> Accelerator:
    """The run's Accelerator, with accumulation over ``grad_accum`` micro-batches (``accelerator.accumulate``).

    Raises ``ValueError`` for FSDP version 1 (this trainer shards with FSDP2's per-parameter DTensors only).
    """
    wanted = requested_strategy()
    cuda = torch.cuda.is_available()
    # DeepSpeed refuses cpu=True outright; on a machine without CUDA its CPU accelerator runs it over gloo
    acc = Accelerator(mixed_precision=mixed_precision, cpu=not cuda and wanted != "deepspeed",
                      gradient_accumulation_steps=grad_accum)
    if wanted == "fsdp2":
        from accelerate.utils import FullyShardedDataParallelPlugin

        if acc.distributed_type == DistributedType.MULTI_CPU:  # Accelerate dropped FSDP for CPU processes
            plugin = FullyShardedDataParallelPlugin()
            if mixed_precision != "no":
                plugin.set_mixed_precision(mixed_precision)
            _set_state(distributed_type=DistributedType.FSDP)
            acc.state.fsdp_plugin = plugin
        if acc.distributed_type == DistributedType.FSDP and not acc.is_fsdp2:
            raise ValueError("FSDP: fsdp_version 1 is not supported (the trainer shards with FSDP2); set "
                             "fsdp_version: 2 (configs/accelerate/fsdp2.yaml)")
    if wanted == "deepspeed" and not cuda and torch.distributed.is_initialized():
        # DeepSpeed initialised the process group, Accelerate counted one process: give it the real ones
        _set_state(num_processes=torch.distributed.get_world_size(), process_index=torch.distributed.get_rank(),
                   local_process_index=int(os.environ.get("LOCAL_RANK", "0")))
    return acc


def _set_state(**values) -> None:
    for state in (PartialState, AcceleratorState):
        state._shared_state.update(values)


def strategy(acc: Accelerator) -> str:
    """What the accelerator runs: single, ddp, fsdp2 or deepspeed."""
    if acc.distributed_type == DistributedType.DEEPSPEED:
        return "deepspeed"
    if acc.distributed_type == DistributedType.FSDP:
        return "fsdp2"
    return "ddp" if acc.num_processes > 1 else "single"


def configure_deepspeed(acc: Accelerator, batch_size: int, grad_accum: int, grad_clip: float) -> None:
    """Fill the DeepSpeed config's ``auto`` batch and clipping values from the run's (no dataloader is prepared, so
    Accelerate cannot infer them); a value the config fixes must agree with the run's, or ``ValueError`` names both."""
    config = acc.state.deepspeed_plugin.deepspeed_config
    wanted = {"train_micro_batch_size_per_gpu": batch_size, "gradient_accumulation_steps": grad_accum,
              "train_batch_size": batch_size * grad_accum * acc.num_processes, "gradient_clipping": grad_clip}
    for key, value in wanted.items():
        if config.get(key, "auto") == "auto":
            config[key] = value
        elif float(config[key]) != float(value):
            raise ValueError(f"DeepSpeed config: {key} is {config[key]}, the training config gives {value} (set it to "
                             "auto in the DeepSpeed config, or change the training config)")
    # ZeRO-Offload refuses a torch optimizer unless told otherwise; the trainer's AdamW keeps every strategy's update
    # the same (DeepSpeedCPUAdam would be faster, with its own kernels)
    config.setdefault("zero_force_ds_cpu_optimizer", False)


def check_sharded(acc: Accelerator, model: torch.nn.Module) -> None:
    """Raise ``RuntimeError`` unless the prepared ``model`` is sharded the way the launch asked (FSDP2: an FSDP module
    with DTensor parameters; DeepSpeed: an engine), so that a launch never trains unsharded without saying so."""
    wanted = requested_strategy()
    if wanted == "fsdp2":
        from torch.distributed.fsdp import FSDPModule
        from torch.distributed.tensor import DTensor

        if not isinstance(model, FSDPModule) or not all(isinstance(p, DTensor) for p in model.parameters()):
            raise RuntimeError(f"FSDP was requested but the prepared model is a {type(model).__name__} with plain "
                               "parameters: it would train unsharded")
    if wanted == "deepspeed" and acc.distributed_type != DistributedType.DEEPSPEED:
        raise RuntimeError("DeepSpeed was requested but Accelerate did not start it")
