"""Training checkpoints: written to a temporary directory and renamed into place, so a crash never leaves a
half-written checkpoint where ``latest`` points.

A checkpoint directory ``step_000250/`` holds ``model.safetensors`` (float32), ``ema.safetensors``,
``model_config.json``, ``optimizer.pt`` (tensors and numbers only, read with ``weights_only=True``) and
``trainer.json`` (step, LR scheduler, EMA count, config). All sampling randomness and the data position derive
from (seed, step, rank), so the step restores them exactly.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

LATEST = "latest"


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    output_dir: str | Path, step: int, model, ema, optimizer, scheduler, trainer_state: dict, keep: int = 2,
    extra: dict | None = None,
) -> Path:
    """Write ``output_dir/checkpoints/step_{step:06d}`` atomically, point ``latest`` at it, prune old ones.

    ``extra`` maps names to training-only modules (e.g. the tracking head), saved as ``NAME.safetensors``.
    """
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    state = {k: v.detach().float().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, tmp / "model.safetensors")
    save_file({k: v.cpu().contiguous() for k, v in ema.state_dict().items()}, tmp / "ema.safetensors")
    config = json.dumps(dict(model.config), indent=2, default=str)  # a loaded model's _name_or_path is a Path
    (tmp / "model_config.json").write_text(config)
    for name, module in (extra or {}).items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, tmp / f"{name}.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    trainer = {**trainer_state, "step": step, "scheduler": scheduler.state_dict(), "ema_updates": ema.num_updates}
    (tmp / "trainer.json").write_text(json.dumps(trainer, indent=2))
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_text_atomic(root / LATEST, final.name)
    for old in sorted(root.glob("step_*"))[:-keep]:
        shutil.rmtree(old)
    return final


def find_checkpoint(path: str | Path) -> Path | None:
    """A checkpoint directory from itself, from a run's output dir (its ``latest``), or None if there is none."""
    path = Path(path)
    if (path / "trainer.json").is_file():
        return path
    root = path / "checkpoints" if (path / "checkpoints").is_dir() else path
    latest = root / LATEST
    if latest.is_file():
        target = root / latest.read_text().strip()
        if not (target / "trainer.json").is_file():
            raise FileNotFoundError(f"checkpoint: {latest} points at {target}, which is not a complete checkpoint")
        return target
    return None


def load_checkpoint(path: str | Path, model, ema, optimizer, scheduler, extra: dict | None = None) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns the trainer state (with ``step``)."""
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(
            f"checkpoint: no checkpoint at {path} (expected step_*/trainer.json or checkpoints/latest)"
        )
    state = load_file(ckpt / "model.safetensors")
    expected = model.state_dict()
    for k, v in expected.items():
        if k not in state:
            raise ValueError(f"checkpoint {ckpt}: missing parameter {k}")
        if state[k].shape != v.shape:
            raise ValueError(
                f"checkpoint {ckpt}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}"
            )
    model.load_state_dict(state)
    for name, module in (extra or {}).items():
        if not (ckpt / f"{name}.safetensors").is_file():
            raise ValueError(f"checkpoint {ckpt}: no {name}.safetensors (was it trained with the same objective?)")
        module.load_state_dict(load_file(ckpt / f"{name}.safetensors"))
    trainer = json.loads((ckpt / "trainer.json").read_text())
    ema.load_state_dict(load_file(ckpt / "ema.safetensors"), trainer["ema_updates"])
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(trainer["scheduler"])
    trainer["path"] = str(ckpt)
    return trainer


def training_metadata(config: dict, step: int) -> dict:
    """What ``mvtrack.json`` records beside exported weights: the data and objective the model was trained with."""
    return {
        "data": config["data"],
        "tasks": config["tasks"],
        "flow_shift": config["flow_shift"],
        "steps": step,
        "ema_decay": config["ema_decay"],
        "model": config["model"],
    }


def export_checkpoint(path: str | Path, directory: str | Path, dtype: torch.dtype = torch.float32) -> Path:
    """Write a checkpoint's EMA weights as a model directory ``load_model`` reads, with its ``mvtrack.json``.

    Pixel-space models are written flat (``config.json`` + safetensors); latent-space models, whose run started
    from a root with ``vae/``, are written as ``transformer/`` beside a copy of that ``vae/``. Weights are stored
    in ``dtype`` (float16 halves the size) and loaded back as float32.
    """
    from mvtrack.models import MultiViewTransformer

    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"checkpoint: no checkpoint at {path}")
    trainer = json.loads((ckpt / "trainer.json").read_text())
    model_config = {
        k: v for k, v in json.loads((ckpt / "model_config.json").read_text()).items() if not k.startswith("_")
    }
    model = MultiViewTransformer.from_config(model_config)
    ema = load_file(ckpt / "ema.safetensors")
    missing = set(dict(model.named_parameters())) - set(ema)
    if missing:
        raise ValueError(f"checkpoint {ckpt}: EMA weights miss {sorted(missing)[:3]}")
    model.load_state_dict({**model.state_dict(), **ema})
    directory = Path(directory)
    vae = Path(trainer["config"]["model"]) / "vae"
    weights_dir = directory / "transformer" if vae.is_dir() else directory
    weights_dir.mkdir(parents=True, exist_ok=True)
    model.save_config(weights_dir)  # weights cast here, not the module: Wan keeps norms and RoPE in float32
    save_file(
        {k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()},
        weights_dir / "diffusion_pytorch_model.safetensors",
    )
    if vae.is_dir():
        shutil.copytree(vae, directory / "vae", dirs_exist_ok=True)
    meta = training_metadata(trainer["config"], trainer["step"])
    (directory / "mvtrack.json").write_text(json.dumps(meta, indent=2))
    return directory
