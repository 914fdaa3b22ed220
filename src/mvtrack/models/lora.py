"""LoRA on the Wan blocks of a ``MultiViewTransformer`` (peft), and the two ways out of it: merged or an adapter.

Only linear layers inside ``wan.blocks`` get adapters: the backbone is what LoRA keeps frozen, and the modules
mvtrack adds (camera encoder, track conditioner, refiner, cross-view attention) are new and train fully. peft's
default initialisation zeroes each ``lora_B``, so a model with fresh adapters computes exactly what it computed
without them (house rule 10).
"""

from __future__ import annotations

import re

import torch
from torch import nn

# Wan's attention projections (self- and cross-attention) and feed-forward layers, by the suffix of their module
# names in diffusers' WanTransformerBlock: DiffSynth-Studio's Wan LoRA default ("q,k,v,o,ffn.0,ffn.2" in Wan's
# own naming), which is what Track2View's LoRA fine-tune of ReCamMaster's Wan builds on.
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0", "ffn.net.0.proj", "ffn.net.2")
_BLOCK = re.compile(r"wan\.blocks\.\d+\.")


def lora_target_names(model: nn.Module, targets: tuple[str, ...] | list[str] = LORA_TARGETS) -> list[str]:
    """Full names of the ``nn.Linear`` modules inside ``wan.blocks`` whose names end with one of ``targets``;
    ``ValueError`` naming a target that matches nothing (a typo would otherwise train no adapter there)."""
    names = []
    for target in targets:
        found = [n for n, m in model.named_modules() if _BLOCK.match(n) and isinstance(m, nn.Linear)
                 and (n == target or n.endswith("." + target))]
        if not found:
            raise ValueError(f"lora.targets: {target!r} names no linear layer inside wan.blocks (Wan's are e.g. "
                             f"{', '.join(LORA_TARGETS)})")
        names += found
    return sorted(set(names))


def add_lora(model: nn.Module, rank: int, alpha: float | None = None, dropout: float = 0.0,
             targets: tuple[str, ...] | list[str] = LORA_TARGETS) -> list[str]:
    """Give the Wan blocks' ``targets`` LoRA adapters of ``rank`` (scale ``alpha / rank``; alpha None: rank) in place.

    The adapters start as no-ops (``lora_B`` zero) in the dtype of the layer they wrap. peft freezes every other
    parameter on the way: callers set ``requires_grad`` afterwards (``mvtrack.training.trainable``).

    Returns:
        the names of the new LoRA parameters.
    """
    from peft import LoraConfig, inject_adapter_in_model

    if has_lora(model):
        raise ValueError("lora: the model already has LoRA adapters")
    if rank < 1:
        raise ValueError(f"lora.rank: expected an integer >= 1, got {rank}")
    config = LoraConfig(r=int(rank), lora_alpha=float(alpha if alpha is not None else rank),
                        lora_dropout=float(dropout), target_modules=lora_target_names(model, targets))
    inject_adapter_in_model(config, model)
    return [n for n, _ in model.named_parameters() if ".lora_" in n]


def has_lora(model: nn.Module) -> bool:
    from peft.tuners.lora import LoraLayer

    return any(isinstance(m, LoraLayer) for m in model.modules())


@torch.no_grad()
def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA adapter into the weight it wraps and put the plain layer back (in place), so the model's
    state dict has the names and shapes of a model without adapters. Merging is done in float32 and cast back to
    the layer's dtype (a bf16 backbone loses only the final rounding)."""
    from peft.tuners.lora import LoraLayer

    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, LoraLayer)]
    for name, module in wrapped:
        base = module.get_base_layer()
        delta = module.get_delta_weight("default")
        base.weight.copy_((base.weight.float() + delta.float()).to(base.weight.dtype))
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, base)
    return model
