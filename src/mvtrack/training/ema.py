"""Exponential moving average of a model's parameters (the weights that are shipped and sampled)."""

from __future__ import annotations

import torch
from torch import nn


def local(p: torch.Tensor) -> torch.Tensor:
    """What a rank holds of a parameter: the parameter itself (a DTensor under FSDP2), or DeepSpeed ZeRO-3's flat
    partition of it."""
    part = getattr(p, "ds_tensor", None)
    return part if isinstance(part, torch.Tensor) else p


class EMA:
    """``shadow = decay * shadow + (1 - decay) * param`` after every optimizer step, in float32.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early averages are not
    dominated by the random initialisation.

    Only the parameters that train are averaged (``requires_grad`` when the EMA is built, or ``names``): a frozen
    weight's average is itself, and keeping a float32 copy of a frozen 1.3B backbone would cost 5 GiB. Each average
    lives where its parameter does, sharded like it: build the EMA after ``accelerator.prepare``. Under FSDP2 an
    average is a DTensor with its parameter's placement; under DeepSpeed ZeRO-3 it averages the rank's partition
    (``ds_tensor``, flat) of the parameter, in the dtype DeepSpeed keeps there (bf16 under bf16 mixed precision).
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, names: list[str] | None = None):
        self.decay = decay
        self.num_updates = 0
        params = dict(model.named_parameters())
        names = [k for k, p in params.items() if p.requires_grad] if names is None else names
        self.shadow = {k: local(params[k]).detach().float().clone() for k in names}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for k, p in model.named_parameters():
            if k in self.shadow:
                self.shadow[k].lerp_(local(p).detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        for k, p in model.named_parameters():
            if k in self.shadow:
                local(p).copy_(self.shadow[k].to(p.dtype))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = set(self.shadow) - set(state)
        if missing:
            raise ValueError(f"EMA state: missing {len(missing)} parameters, e.g. {sorted(missing)[:3]}")
        for k in self.shadow:
            if state[k].shape != self.shadow[k].shape:
                raise ValueError(
                    f"EMA state {k}: expected shape {tuple(self.shadow[k].shape)}, got {tuple(state[k].shape)}"
                )
            self.shadow[k].copy_(state[k])
        self.num_updates = num_updates
