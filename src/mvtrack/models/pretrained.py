"""Loading models from local directories (nothing is ever downloaded).

Accepted layouts:
- a preset name (``tiny``, ``S``, ``B``): a fresh pixel-space model;
- an mvtrack transformer directory (``config.json`` of ``MultiViewTransformer`` + safetensors): pixel space,
  as the shipped ``weights/mvtrack-S``;
- a model root with ``transformer/`` and optionally ``vae/``: latent space when ``vae/`` holds an
  ``AutoencoderKLWan``. ``transformer/`` may hold a ``MultiViewTransformer``, a plain
  ``WanTransformer3DModel`` (a Wan2.1 diffusers checkpoint), which is wrapped with a zero camera branch, or an
  mvtrack LoRA adapter (``adapter_config.json`` naming its base model + ``adapter_model.safetensors``), which is
  applied to its base and merged. A root's ``text_encoder/`` and ``tokenizer/`` are read by
  ``mvtrack.models.text.load_text_encoder``, its ``scheduler/`` by the pipeline.

A ``torch_dtype`` casts every weight but those of the modules Wan keeps in float32 (``_keep_in_fp32_modules``:
norms, the time embedder, the modulation tables, RoPE), as diffusers' ``from_pretrained`` does.
"""

from __future__ import annotations

import json
import math
import types
import typing
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from .codec import PixelCodec, WanVAECodec
from .presets import PRESETS, build_model
from .transformer import MultiViewTransformer

WEIGHTS = "diffusion_pytorch_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def keeps_fp32(model: torch.nn.Module, name: str) -> bool:
    """Whether the parameter, buffer or module ``name`` of ``model`` belongs to a module its class keeps in float32
    (diffusers' rule: a ``_keep_in_fp32_modules`` entry is one of the dotted name's parts)."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or ()
    return any(k in name.split(".") for k in keep)


@torch.no_grad()
def to_weight_dtype(model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
    """Cast ``model``'s floating parameters and buffers to ``dtype`` in place, except those its class keeps in
    float32 (Wan's norms, time embedder, modulation tables and RoPE); None leaves it as it is. ``Module.to(dtype)``
    would cast those too."""
    if dtype is None:
        return model
    for name, module in model.named_modules():
        for key, p in module.named_parameters(recurse=False):
            target = torch.float32 if keeps_fp32(model, f"{name}.{key}") else dtype
            if p.is_floating_point() and p.dtype != target:
                p.data = p.data.to(target)
        for key, b in module.named_buffers(recurse=False):
            target = torch.float32 if keeps_fp32(model, f"{name}.{key}") else dtype
            if b is not None and b.is_floating_point() and b.dtype != target:
                module._buffers[key] = b.to(target)
    return model


def read_json_object(path: Path, what: str) -> dict:
    """A JSON file that must hold an object; ``ValueError`` naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object ({what}), got a {type(data).__name__}")
    return data


def _class_name(directory: Path) -> str | None:
    config = directory / "config.json"
    if not config.is_file():
        return None
    name = read_json_object(config, "a model config").get("_class_name")
    return name if isinstance(name, str) else repr(name)


def _weight_shapes(directory: Path) -> dict[str, tuple]:
    """Name -> shape of every tensor in a directory's safetensors, read from the headers (nothing is loaded)."""
    index = directory / f"{WEIGHTS}.index.json"
    if (directory / WEIGHTS).is_file():
        files = [directory / WEIGHTS]
    elif index.is_file():
        weight_map = read_json_object(index, "a weight index").get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: expected a weight_map object")
        files = sorted({directory / str(f) for f in weight_map.values()})
    else:
        raise FileNotFoundError(f"model {directory}: no {WEIGHTS} (weights are read from safetensors only)")
    shapes = {}
    for f in files:
        try:
            with safe_open(f, framework="pt") as weights:
                for k in weights.keys():
                    shapes[k] = tuple(weights.get_slice(k).get_shape())
        except (SafetensorError, OSError, ValueError) as e:
            raise ValueError(f"{f}: not a readable safetensors file ({e})") from None
    return shapes


def _type_problem(value, hint) -> str | None:
    """What ``value`` (from JSON) should have been for the annotation ``hint``, or None when it fits."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        # a section (``TrackConditionerConfig | dict``): config.json holds its mapping, whose keys the constructor
        # checks with the section's own checker (naming ``track_conditioner.width``)
        hint = args[0] if len(args) == 1 else dict if dict in args else hint
    origin = typing.get_origin(hint) or hint
    if origin is int and (isinstance(value, bool) or not isinstance(value, int)):
        return "an integer"
    if origin is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return "a finite number"
    if origin in (str, bool, dict) and not isinstance(value, origin):
        return {str: "a string", bool: "true or false", dict: "an object"}[origin]
    if origin in (tuple, list):
        item = (typing.get_args(hint) or (None,))[0]
        if not isinstance(value, (list, tuple)) or (item is int and not all(
                isinstance(x, int) and not isinstance(x, bool) for x in value)):
            return "a list of integers" if item is int else "a list"
    return None


def check_config_types(cls, config: dict, path: Path, prefix: str = "") -> None:
    """The keys of a model's ``config.json`` against the types of ``cls.__init__`` (a ``MultiViewTransformer``'s
    ``wan_config`` against ``WanTransformer3DModel``'s), before the model is built; ``ValueError`` naming the file
    and the key path (``wan_config.num_layers``) otherwise. Unknown keys are left to diffusers, which ignores them."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # annotations that do not resolve: nothing to check against
        return
    for key, value in config.items():
        if key.startswith("_") or key not in hints:
            continue
        problem = _type_problem(value, hints[key])
        if problem:
            raise ValueError(f"{path}: {prefix}{key}: expected {problem}, got {value!r:.100}")
    if cls is MultiViewTransformer and isinstance(config.get("wan_config"), dict):
        from diffusers import WanTransformer3DModel

        check_config_types(WanTransformer3DModel, config["wan_config"], path, "wan_config.")


def check_weights(cls, directory: Path) -> None:
    """Check every weight in ``directory`` against the shapes of the model its ``config.json`` describes (as
    nanoGPT's ``from_pretrained`` does), before anything is loaded; ``ValueError`` naming the first mismatches."""
    config_path = directory / "config.json"
    config = read_json_object(config_path, "a model config")
    check_config_types(cls, config, config_path)
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = cls.from_config(config)
    except Exception as e:  # any failure here means the config does not describe a model
        raise ValueError(f"{config_path}: does not describe a {cls.__name__} ({type(e).__name__}: {e})") from None
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = _weight_shapes(directory)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = [f"{k} has shape {found[k]}, config.json says {expected[k]}"
             for k in expected if k in found and found[k] != expected[k]]
    problems = []
    if missing:
        problems.append(f"{len(missing)} weight(s) missing ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} weight(s) the config has no place for ({', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"{len(wrong)} with another shape ({', '.join(wrong[:2])})")
    if problems:
        raise ValueError(f"model {directory}: the weights do not load into the model its config.json describes: "
                         f"{'; '.join(problems)}")


def _load(cls, directory: Path, torch_dtype):
    check_weights(cls, directory)
    try:
        model = cls.from_pretrained(directory, torch_dtype=torch_dtype)
    except (ValueError, RuntimeError, OSError, TypeError) as e:
        raise ValueError(
            f"model {directory}: the weights do not load into the model its config.json describes: {e}"
        ) from e
    for name, value in model.state_dict().items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise ValueError(f"model {directory}: weight {name} holds NaN or inf values (a diverged training run?); "
                             "it would generate blank videos")
    return model


def read_model_meta(model_dir: str | Path | None) -> dict:
    """A model directory's ``mvtrack.json`` (what it was trained on: ``data``, ``scene``, ``text``, ``flow_shift``,
    ``tracks``), checked as ``check_model_files`` checks it; ``{}`` for a preset (None) or a directory without one.
    Every reader of the file (the pipeline, the runners' defaults, the scene scale) goes through here."""
    if model_dir is None or not (Path(model_dir) / "mvtrack.json").is_file():
        return {}
    check_model_files(Path(model_dir))
    return read_json_object(Path(model_dir) / "mvtrack.json", "training metadata")


def check_model_files(directory: Path) -> None:
    """Check the files beside the weights that loaders read: ``mvtrack.json`` (training metadata) and
    ``scheduler/scheduler_config.json``; ``ValueError`` naming the file and the key otherwise."""
    meta_path = directory / "mvtrack.json"
    if meta_path.is_file():
        meta = read_json_object(meta_path, "training metadata")
        shift = meta.get("flow_shift")
        if shift is not None and (isinstance(shift, bool) or not isinstance(shift, (int, float))
                                  or not math.isfinite(shift) or shift <= 0):
            raise ValueError(f"{meta_path}: flow_shift: expected a finite number > 0, got {shift!r}")
        data = meta.get("data", {})
        if not isinstance(data, dict):
            raise ValueError(f"{meta_path}: data: expected an object, got {data!r}")
        for k in ("views", "frames", "height", "width"):
            v = data.get(k, 1)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{meta_path}: data.{k}: expected an integer >= 1, got {v!r}")
        if not isinstance(data.get("baseline", ""), str):
            raise ValueError(f"{meta_path}: data.baseline: expected a string, got {data['baseline']!r}")
        text = meta.get("text", {})
        if not isinstance(text, dict) or not isinstance(text.get("default_caption", ""), str):
            raise ValueError(f"{meta_path}: text: expected an object whose default_caption is a string, got {text!r}")
    scheduler_path = directory / "scheduler" / "scheduler_config.json"
    if scheduler_path.is_file():
        import diffusers

        name = read_json_object(scheduler_path, "a scheduler config").get("_class_name")
        cls = getattr(diffusers, name, None) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            raise ValueError(f"{scheduler_path}: _class_name {name!r} is not a diffusers scheduler "
                             "(expected e.g. FlowMatchEulerDiscreteScheduler)")


def transformer_dir(spec: str | Path) -> Path:
    """The directory that holds a model directory's transformer: itself (flat layout) or its ``transformer/``."""
    path = Path(spec)
    return path if (path / "config.json").is_file() else path / "transformer"


def load_transformer(directory: str | Path, torch_dtype: torch.dtype | None = None) -> MultiViewTransformer:
    """A ``MultiViewTransformer`` from an mvtrack or Wan2.1 transformer directory, or an mvtrack LoRA adapter."""
    directory = Path(directory)
    if (directory / ADAPTER_CONFIG).is_file():
        return _load_adapter(directory, torch_dtype)
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
        model = build_model(str(spec), prediction_type=prediction_type or "velocity")
        return to_weight_dtype(model, torch_dtype), PixelCodec()
    path = Path(spec)
    if not path.is_dir():
        raise FileNotFoundError(
            f"model: {str(spec)!r} is neither a preset {sorted(PRESETS)} nor an existing local directory "
            "(weights are never downloaded; pass the directory that holds them)"
        )
    check_model_files(path)
    if (path / "config.json").is_file():
        model, codec = load_transformer(path, torch_dtype), PixelCodec()
    elif (path / "transformer").is_dir():
        model = load_transformer(path / "transformer", torch_dtype)
        codec = PixelCodec()
        if (path / "vae").is_dir():
            codec = load_vae_codec(path)
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


def load_vae_codec(root: str | Path) -> WanVAECodec:
    """The ``WanVAECodec`` of a model root's ``vae/`` alone (no transformer is read)."""
    from diffusers import AutoencoderKLWan

    path = Path(root) / "vae"
    if not path.is_dir():
        raise FileNotFoundError(f"model {root}: no vae/ directory (a Wan2.1 root has one)")
    if _class_name(path) != "AutoencoderKLWan":
        raise ValueError(f"model {path}: expected an AutoencoderKLWan config.json")
    # float32 whatever the transformer's dtype, as diffusers' Wan examples load it: bf16 decoding loses detail
    return WanVAECodec(_load(AutoencoderKLWan, path, torch.float32))


def _load_adapter(directory: Path, torch_dtype: torch.dtype | None) -> MultiViewTransformer:
    """An mvtrack LoRA adapter (``export --lora adapter``) applied to its base model and merged.

    ``adapter_config.json`` holds the base model directory (``base_model_name_or_path``, the training run's
    ``model``) and the LoRA settings (``r``, ``lora_alpha``, ``target_modules``); ``config.json`` the trained
    model's config (the modules training added: refiner, track conditioner, epipolar attention);
    ``adapter_model.safetensors`` every tensor that is not the base's: the LoRA matrices and the trained modules.
    """
    from .lora import add_lora, merge_lora

    meta_path = directory / ADAPTER_CONFIG
    meta = read_json_object(meta_path, "a LoRA adapter config")
    base = meta.get("base_model_name_or_path")
    if not isinstance(base, str) or not Path(base).is_dir():
        raise FileNotFoundError(f"{meta_path}: base_model_name_or_path {base!r} is not a directory (the model the "
                                "adapter was trained on must be where training found it; or export with --lora merge)")
    config = read_json_object(directory / "config.json", "a model config")
    model = load_transformer(transformer_dir(base), torch_dtype)
    base_keys = set(model.state_dict())
    own = {k: v for k, v in model.config.items() if not k.startswith("_")}
    for key in ("wan_config", "camera_channels", "context_tokens", "prediction_type", "min_sigma"):
        if key in config and _plain(config[key]) != _plain(own.get(key)):
            raise ValueError(f"{directory / 'config.json'}: {key} differs from the base model {base}'s; the adapter "
                             "was trained on another model")
    if config.get("refiner_block") is not None:
        model.add_refiner(int(config["refiner_block"]), config.get("refiner_style"))
    if config.get("track_conditioner") and model.conditioner is None:
        model.add_track_conditioner(**config["track_conditioner"])
    if config.get("epipolar") and not model.config.epipolar:
        model.add_epipolar(**config["epipolar"])
    rank = meta.get("r")
    if rank:
        add_lora(model, int(rank), meta.get("lora_alpha"), 0.0, list(meta.get("target_modules") or []))
    path = directory / ADAPTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(f"model {directory}: no {ADAPTER_WEIGHTS} beside {ADAPTER_CONFIG}")
    try:
        from safetensors.torch import load_file

        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable safetensors file ({e})") from None
    state = model.state_dict()
    # a wrapped layer's own weight is the base's (``....to_q.base_layer.weight`` is the base's ``....to_q.weight``)
    missing = sorted(k for k in state if k.replace(".base_layer.", ".") not in base_keys and k not in tensors)
    unknown = sorted(k for k in tensors if k not in state)
    wrong = [k for k in tensors if k in state and tensors[k].shape != state[k].shape]
    if missing or unknown or wrong:
        raise ValueError(f"{path}: does not fit the model its config.json and {ADAPTER_CONFIG} describe on base {base} "
                         f"(missing {missing[:3]}, unknown {unknown[:3]}, other shapes {wrong[:3]})")
    model.load_state_dict(tensors, strict=False)
    return merge_lora(model) if rank else model


def _plain(value):
    """A config value with tuples as lists (JSON's view), for comparison."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value
