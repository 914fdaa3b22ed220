"""Checkpoint state written by every rank at once and read back on any number of processes.

torch's distributed checkpoint (DCP) in safetensors files: each rank writes the shards it holds (FSDP2's DTensor
shards; under DDP the replicated tensors are split between the ranks, so no rank writes everything) into
``state/shard-0000{rank+1}-model-00001-of-00001.safetensors``, and each file records where its pieces sit in the
full tensors (safetensors metadata, JSON). Reading plans the pieces every reader needs, so a checkpoint written by 8
FSDP2 ranks loads into 4, into 1, or into a plain single-process model (export). Nothing is unpickled: the format is
safetensors plus JSON, whereas DCP's default format pickles its metadata.
"""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path

import torch

STATE_DIR = "state"


def split_values(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """``(tensors, values)`` of a flat state dict: the tensors go to safetensors, the rest (an optimizer's
    hyperparameters, identical on every rank) to JSON."""
    tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
    values = {k: list(v) if isinstance(v, tuple) else v for k, v in state.items() if k not in tensors}
    return tensors, values


def join_values(tensors: dict[str, torch.Tensor], values: dict, template: dict) -> dict:
    """Inverse of ``split_values``: JSON lists back to tuples where ``template`` (the live state) has tuples."""
    out = dict(tensors)
    for k, v in values.items():
        out[k] = tuple(v) if isinstance(template.get(k), tuple) and isinstance(v, list) else v
    return out


def save_state(directory: str | Path, state: dict[str, dict[str, torch.Tensor]]) -> None:
    """Write nested ``{group: {name: tensor}}`` (plain tensors or DTensors) under ``directory``; a collective: every
    rank calls it with its own shards."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageWriter

    with _quiet():
        dcp.save(state, storage_writer=HuggingFaceStorageWriter(str(directory), save_distributed=True),
                 no_dist=not _distributed())


def load_state(directory: str | Path, state: dict[str, dict[str, torch.Tensor]], collective: bool = True) -> None:
    """Fill ``state`` (the same nesting as saved; plain tensors or DTensors) in place from ``directory``, whatever the
    number of processes that wrote it; ``collective`` False reads in this process alone (no process group).

    Raises ``ValueError`` naming the checkpoint and the first entries that it lacks or holds in another shape.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    reader = HuggingFaceStorageReader(str(directory))
    stored = stored_shapes(directory)
    flat = {f"{group}.{k}": v for group, tensors in state.items() for k, v in tensors.items()}
    missing = sorted(k for k in flat if k not in stored)
    if missing:
        raise ValueError(f"checkpoint {directory}: no {missing[:3]}{' ...' if len(missing) > 3 else ''} (was it written "
                         "by a run of the same model and objective?)")
    wrong = [f"{k} {tuple(stored[k])} (expected {tuple(v.shape)})" for k, v in flat.items()
             if tuple(stored[k]) != tuple(v.shape)]
    if wrong:
        raise ValueError(f"checkpoint {directory}: {', '.join(wrong[:3])}")
    with _quiet():
        dcp.load(state, storage_reader=reader, no_dist=not (collective and _distributed()))


@contextlib.contextmanager
def _quiet():
    """DCP warns that it assumes one process whenever there is no process group: that is what is meant here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def stored_shapes(directory: str | Path) -> dict[str, torch.Size]:
    """Full shape of every tensor of a state directory (``group.name``), from the files' JSON headers alone."""
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    if not Path(directory).is_dir() or not any(Path(directory).glob("*.safetensors")):
        raise FileNotFoundError(f"checkpoint {directory}: no safetensors shards")
    metadata = HuggingFaceStorageReader(str(directory)).read_metadata()
    return {k: v.size for k, v in metadata.state_dict_metadata.items()}


def read_full(directory: str | Path, group: str) -> dict[str, torch.Tensor]:
    """Every tensor of ``group`` as a full CPU tensor, read in this process alone (export, inspection)."""
    from torch.distributed.checkpoint import HuggingFaceStorageReader

    metadata = HuggingFaceStorageReader(str(directory)).read_metadata().state_dict_metadata
    prefix = group + "."
    tensors = {k[len(prefix):]: torch.empty(v.size, dtype=v.properties.dtype)
               for k, v in metadata.items() if k.startswith(prefix)}
    if tensors:
        load_state(directory, {group: tensors}, collective=False)
    return tensors


HEAD = "supervision.head."  # TrainingModule's names of the tracking head's parameters


def _groups(module, optimizer, ema, keep: set[str] | None) -> tuple[dict, dict]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    model_sd, optim_sd = get_state_dict(module, optimizer, options=StateDictOptions(flatten_optimizer_state_dict=True))
    groups = {"model": {k[6:]: v for k, v in model_sd.items() if k.startswith("model.")
                        and (keep is None or k[6:] in keep)},
              "track_head": {k[len(HEAD):]: v for k, v in model_sd.items() if k.startswith(HEAD)},
              "ema": ema.state_dict(),
              "optimizer": split_values(optim_sd)[0]}
    return {k: v for k, v in groups.items() if v}, optim_sd


def train_state(module, optimizer, ema, keep: set[str] | None = None) -> tuple[dict, dict]:
    """What a checkpoint holds of a prepared ``TrainingModule`` (DDP, FSDP2 or plain), as DCP groups and JSON values.

    Returns:
        ``({"model": transformer tensors, "track_head": head tensors, "ema": averages, "optimizer": tensors},
        optimizer values)``; ``keep``: the transformer names to save (a partial run's trained parameters and buffers),
        None for all. Names are the transformer's and the head's own, as in the unsharded checkpoints.
    """
    groups, optim_sd = _groups(module, optimizer, ema, keep)
    return groups, split_values(optim_sd)[1]


def restore_train_state(directory: str | Path, values: dict, module, optimizer, ema, keep: set[str] | None = None,
                        num_updates: int = 0) -> None:
    """Load what ``train_state`` saved into the prepared module, its optimizer and the EMA, resharding to this run's
    processes (a collective)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    groups, optim_sd = _groups(module, optimizer, ema, keep)
    stored = {k.split(".", 1)[0] for k in stored_shapes(directory)}
    if ("track_head" in groups) != ("track_head" in stored):
        raise ValueError(f"checkpoint {directory}: {'no' if 'track_head' in groups else 'a'} tracking head (was it "
                         "trained with the same objective?)")
    load_state(directory, groups)
    model_sd = {**{"model." + k: v for k, v in groups["model"].items()},
                **{HEAD + k: v for k, v in groups.get("track_head", {}).items()}}
    optim_sd = join_values(groups.get("optimizer", {}), values, optim_sd)
    set_state_dict(module, optimizer, model_state_dict=model_sd, optim_state_dict=optim_sd,
                   options=StateDictOptions(strict=keep is None, flatten_optimizer_state_dict=True))
    ema.num_updates = num_updates
