"""The model a training run builds, and which of its parameters train (``trainable:`` presets, LoRA).

One function builds it for the trainer and for ``export_checkpoint`` (which rebuilds the frozen base of a run that
saved only what it trained), so both see the same model.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from mvtrack.models import load_model
from mvtrack.models.lora import add_lora
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.models.refiner import track4gen_trainable

from .config import TrainConfig

# the modules mvtrack adds to a backbone: every preset trains the ones it keeps (they start at zero or identity)
NEW_MODULES = ("camera_encoder.", "conditioner.", "refiner.", "cross_view.")
_SELF_ATTENTION = re.compile(r"wan\.blocks\.\d+\.attn1\.")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def trainable_preset(config: TrainConfig) -> str:
    """``config.trainable``, or ``track4gen`` for configs that ask for it the older way (``tracking.trainable``)."""
    if config.tracking.trainable == "all":
        return config.trainable
    if config.trainable not in ("all", config.tracking.trainable):
        raise ValueError(f"trainable: {config.trainable!r} and tracking.trainable: {config.tracking.trainable!r} "
                         "disagree; set trainable only")
    return config.tracking.trainable


def build_model(config: TrainConfig):
    """The run's model: ``config.model`` loaded (frozen weights in ``weight_dtype``), the configured modules added
    (refiner, track conditioner, epipolar attention), LoRA adapters for the presets that use them.

    Randomness (a preset's initialisation, new modules) comes from the global generator: callers fork and seed it.

    Returns:
        ``(model, codec)``; the model's ``requires_grad`` are not set yet (``apply_trainable``).
    """
    dtype = DTYPES[config.weight_dtype] if trainable_preset(config) != "all" else None
    model, codec = load_model(config.model, torch_dtype=dtype, prediction_type=config.prediction_type)
    if config.tracking.refiner_block is not None:
        model.add_refiner(config.tracking.refiner_block, config.tracking.refiner_style)
    # a module the model has must be one the config states: the trainer feeds whatever the model has (tracks to a
    # conditioner, masks to epipolar attention), so an unstated one would train a method the config does not name
    for key, present, what in (("track2view.conditioner", model.conditioner is not None, "a Track2View track "
                                "conditioner"), ("cvd.epipolar", bool(model.config.epipolar), "CVD epipolar attention")):
        section, name = key.split(".")
        if present and getattr(getattr(config, section), name) is None:
            have = model.config.track_conditioner if name == "conditioner" else model.config.epipolar
            raise ValueError(f"{key}: {config.model} has {what} ({dict(have)}) that this config does not mention, "
                             f"so training would train it too; state it as {key} (as in the model's config.json) to "
                             "train that method, or start from a camera-only model")
    wanted = config.track2view.conditioner
    if wanted is not None and model.conditioner is None:
        model.add_track_conditioner(**wanted)
    elif wanted is not None and dict(model.config.track_conditioner) != dict(wanted):
        have = dict(model.config.track_conditioner)
        changed = {k: v for k, v in wanted.items() if have.get(k) != v}
        if any(have.get(k) != wanted.get(k) for k in set(have) - set(model.EXTENSIBLE)) or \
                set(changed) - set(model.EXTENSIBLE):
            raise ValueError(f"track2view.conditioner: {config.model} already has a track conditioner {have}, not "
                             f"{dict(wanted)} (only {', '.join(model.EXTENSIBLE)} can change on a trained one)")
        model.extend_track_conditioner(**changed)
    wanted = config.cvd.epipolar
    if wanted is not None and not model.config.epipolar:
        model.add_epipolar(**wanted)
    elif wanted is not None and dict(model.config.epipolar) != dict(wanted):
        raise ValueError(f"cvd.epipolar: {config.model} already has epipolar attention "
                         f"{dict(model.config.epipolar)}, not {dict(wanted)}")
    if trainable_preset(config) in ("lora", "track2view"):
        lora = config.lora
        add_lora(model, lora.rank, lora.alpha, lora.dropout, lora.targets)
    return model, codec


def trainable_names(model: nn.Module, preset: str, also: list[str] = (), text: bool = False) -> list[str]:
    """The parameters ``preset`` trains (see ``TrainConfig.trainable``), plus those under the ``also`` prefixes.

    The learned null context trains only where it is used: in a model without a text encoder (``text`` False).
    """
    names = [n for n, _ in model.named_parameters()]
    new = {n for n in names if n.startswith(NEW_MODULES)}
    lora = {n for n in names if ".lora_" in n}
    if preset == "all":
        keep = set(names)
    elif preset == "lora":
        if not lora:
            raise ValueError("trainable: lora: the model has no LoRA adapters (build it with training.model.build_model)")
        keep = lora | new
    elif preset == "track2view":
        if getattr(model, "conditioner", None) is None:
            raise ValueError("trainable: track2view trains LoRA and the track conditioner, but the model has no "
                             "conditioner (set track2view.conditioner)")
        keep = lora | {n for n in names if n.startswith(("conditioner.", "camera_encoder."))}
    elif preset == "recammaster":  # camera encoder, its per-block projectors, every block's 3D self-attention
        keep = new | {n for n in names if _SELF_ATTENTION.match(n)}
    elif preset == "track4gen":
        keep = set(track4gen_trainable(model))
    else:
        raise ValueError(f"trainable: expected one of all, lora, recammaster, track2view, track4gen, got {preset!r}")
    for prefix in also:  # whole name parts: "camera" is not the prefix of camera_encoder
        stem = prefix.rstrip(".")
        hits = {n for n in names if n == stem or n.startswith(stem + ".")}
        if not hits:
            raise ValueError(f"also_train: {prefix!r} is the prefix of no parameter (e.g. camera_encoder, "
                             "wan.blocks.29.)")
        keep |= hits
    if text:
        keep.discard("null_context")
    elif preset != "track4gen" and "null_context" in names:  # Track4Gen's subset leaves the context alone
        keep.add("null_context")
    return sorted(keep)


def apply_trainable(model: nn.Module, names: list[str], weight_dtype: str = "float32") -> None:
    """Train exactly ``names``: ``requires_grad`` set, those parameters in float32 (AdamW's master weights), every
    other weight in ``weight_dtype`` except Wan's float32 modules."""
    keep, dtype = set(names), DTYPES[weight_dtype]
    for name, p in model.named_parameters():
        p.requires_grad_(name in keep)
        target = torch.float32 if name in keep or keeps_fp32(model, name) else dtype
        if p.is_floating_point() and p.dtype != target:
            p.data = p.data.to(target)
    for name, module in model.named_modules():  # a trained module's statistics (BatchNorm) follow its parameters
        prefix = f"{name}." if name else ""
        if any(prefix + k in keep for k, _ in module.named_parameters(recurse=False)):
            for k, b in module.named_buffers(recurse=False):
                if b is not None and b.is_floating_point() and b.dtype != torch.float32:
                    module._buffers[k] = b.float()


class TrainingModule(nn.Module):
    """What the trainer hands to ``accelerator.prepare``: the transformer and every training-only module (the
    tracking head), so that DDP averages, FSDP2 shards and DeepSpeed partitions all the trained parameters, and one
    forward runs everything that touches them (FSDP2 gathers a module's shards only inside its forward).

    Args:
        model: the ``MultiViewTransformer`` (``self.model``; its parameter names are the checkpoint's).
        supervision: a ``TrackSupervision`` (its head, if any, trains; ``self.supervision``) or None.
    """

    def __init__(self, model: nn.Module, supervision: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.supervision = supervision

    def forward(self, x_t, timestep, camera, context=None, epipolar=None, conditioning: dict | None = None,
                tracks: torch.Tensor | None = None, visible: torch.Tensor | None = None, size=None,
                generator: torch.Generator | None = None):
        """The model's prediction and the track losses of one micro-batch.

        Args:
            x_t, timestep, camera, context, epipolar, conditioning: the transformer's inputs (``conditioning``: the
                track conditioner's keyword arguments).
            tracks: (B, V, F, N, 2) on the model's input grid, visible: (B, V, F, N), size: (h, w) of the model input;
                needed when ``supervision`` is set.

        Returns:
            ``(pred (B, V, F, C, h, w), losses)``; ``losses`` holds the weighted track losses and their ``total``
            (empty without supervision).
        """
        pred = self.model(x_t, timestep, camera, context, epipolar=epipolar, **(conditioning or {})).sample
        if self.supervision is None:
            return pred, {}
        with torch.autocast(x_t.device.type, enabled=False):  # the losses choose their own precision
            losses = self.supervision.losses(self.model, tracks, visible, size, generator)
        self.supervision.clear(self.model)  # the losses' graph keeps what backward needs
        return pred, losses
