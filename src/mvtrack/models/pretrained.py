"""Loading models from local directories (nothing is ever downloaded).

Accepted layouts:
- a preset name (``tiny``, ``S``, ``B``): a fresh pixel-space model;
- an mvtrack transformer directory (``config.json`` of ``MultiViewTransformer`` + safetensors): pixel space,
  as the shipped ``weights/mvtrack-S``;
- a model root with ``transformer/`` and optionally ``vae/``: latent space when ``vae/`` holds an
  ``AutoencoderKLWan``. ``transformer/`` may hold a ``MultiViewTransformer`` or a plain
  ``WanTransformer3DModel`` (a Wan2.1 diffusers checkpoint), which is wrapped with a zero camera branch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .codec import PixelCodec, WanVAECodec
from .presets import PRESETS, build_model
from .transformer import MultiViewTransformer


def _class_name(directory: Path) -> str | None:
    config = directory / "config.json"
    if not config.is_file():
        return None
    try:
        return json.loads(config.read_text()).get("_class_name")
    except json.JSONDecodeError as e:
        raise ValueError(f"{config}: not valid JSON ({e})") from None


def _load(cls, directory: Path, torch_dtype):
    try:
        return cls.from_pretrained(directory, torch_dtype=torch_dtype)
    except (ValueError, RuntimeError, OSError) as e:
        raise ValueError(
            f"model {directory}: the weights do not load into the model its config.json describes: {e}"
        ) from e


def load_transformer(directory: str | Path, torch_dtype: torch.dtype | None = None) -> MultiViewTransformer:
    """A ``MultiViewTransformer`` from an mvtrack or Wan2.1 transformer directory."""
    directory = Path(directory)
    name = _class_name(directory)
    if name == "MultiViewTransformer":
        return _load(MultiViewTransformer, directory, torch_dtype)
    if name == "WanTransformer3DModel":
        from diffusers import WanTransformer3DModel

        return MultiViewTransformer.from_wan(_load(WanTransformer3DModel, directory, torch_dtype))
    raise ValueError(
        f"model {directory}: expected config.json with _class_name MultiViewTransformer or WanTransformer3DModel, "
        f"got {name!r}"
    )


def load_model(spec: str | Path, torch_dtype: torch.dtype | None = None, prediction_type: str | None = None):
    """Resolve a preset name or a local directory to ``(MultiViewTransformer, codec)``; see the module docstring.

    ``prediction_type`` sets a fresh preset's output parametrisation; for a saved model it must match (or be None).
    """
    if str(spec) in PRESETS:
        return build_model(str(spec), prediction_type=prediction_type or "velocity"), PixelCodec()
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model: {str(spec)!r} is neither a preset {sorted(PRESETS)} nor an existing local directory "
            "(weights are never downloaded; pass the directory that holds them)"
        )
    if (path / "config.json").is_file():
        model, codec = load_transformer(path, torch_dtype), PixelCodec()
    elif (path / "transformer").is_dir():
        model = load_transformer(path / "transformer", torch_dtype)
        codec = PixelCodec()
        if (path / "vae").is_dir():
            from diffusers import AutoencoderKLWan

            if _class_name(path / "vae") != "AutoencoderKLWan":
                raise ValueError(f"model {path / 'vae'}: expected an AutoencoderKLWan config.json")
            codec = WanVAECodec(_load(AutoencoderKLWan, path / "vae", torch_dtype))
    else:
        raise FileNotFoundError(f"model {path}: expected config.json or a transformer/ subdirectory")
    if prediction_type is not None and model.config.prediction_type != prediction_type:
        raise ValueError(
            f"model {path}: predicts {model.config.prediction_type!r}, but {prediction_type!r} was asked for"
        )
    if model.in_channels != codec.channels:
        raise ValueError(
            f"model {path}: the transformer takes {model.in_channels} channels but the "
            f"{'VAE latents have' if isinstance(codec, WanVAECodec) else 'pixel space has'} {codec.channels}"
        )
    return model, codec
