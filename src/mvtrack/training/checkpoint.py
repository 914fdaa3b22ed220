"""Training checkpoints: written to a temporary directory and renamed into place, so a crash never leaves a
half-written checkpoint where ``latest`` points.

A checkpoint directory ``step_000250/`` holds ``state/`` (every rank's shards of the trained weights, the EMA, the
tracking head and the optimizer's tensors: safetensors files read back on any number of processes, see ``sharded``),
``model_config.json`` and ``trainer.json`` (step, LR scheduler, EMA count, the optimizer's hyperparameters, config,
the strategy and number of processes that wrote it). All sampling randomness and the data position derive from
(seed, step, rank), so the step restores them exactly. Checkpoints written before sharding (``model.safetensors``
(float32), ``ema.safetensors``, ``optimizer.pt`` read with ``weights_only=True``) still resume and export.

A run that trains part of its model (LoRA, a ``trainable:`` preset other than ``all``) saves only the trained
parameters and the buffers (``trainer.json`` ``partial: true``): the frozen weights are its base model's, which
resume and export rebuild from the run's config (``training.model.build_model``), so the base must stay where and
what it was. The EMA holds the trained parameters only.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .sharded import STATE_DIR, read_full

LATEST = "latest"
_STEP = re.compile(r"step_(\d+)")
# config keys a resumed run may change: they decide how often things are written, not what is trained.
# max_steps changes the cosine schedule from the resumed step on; it is allowed (training longer) and recorded.
RESUMABLE = ("output_dir", "max_steps", "log_every", "checkpoint_every", "keep_checkpoints", "tensorboard",
             "gradient_checkpointing", "data.render_device", "data.workers")
# keys added to the config after runs were written, with the value in effect before them: a run whose config lacks one
# resumes only under that value
ADDED = {"data.shuffle": False}


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """``(step, directory)`` of the complete checkpoints under ``output_dir/checkpoints``, by step number."""
    root = Path(output_dir) / "checkpoints"
    found = []
    for p in root.glob("step_*") if root.is_dir() else []:
        m = _STEP.fullmatch(p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    return sorted(found)


def prune_checkpoints(output_dir: str | Path, keep: int, current: int) -> list[Path]:
    """Delete all but the ``keep`` latest checkpoints at or before step ``current``; returns what was deleted.

    Steps are compared as numbers, never as names. Checkpoints after ``current`` belong to an earlier run
    (``--no-resume`` into the same directory) and are left alone, as is the checkpoint of ``current`` itself.
    """
    older = [(s, p) for s, p in list_checkpoints(output_dir) if s <= current]
    doomed = [p for s, p in older[: max(0, len(older) - max(1, keep))] if s != current]
    for p in doomed:
        shutil.rmtree(p)
    return doomed


def clean_temporary(output_dir: str | Path) -> list[Path]:
    """Remove ``.tmp-step_*`` directories left by a run killed while writing a checkpoint."""
    root = Path(output_dir) / "checkpoints"
    stale = sorted(root.glob(".tmp-step_*")) if root.is_dir() else []
    for p in stale:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def config_changes(old: dict, new: dict, prefix: str = "") -> dict[str, tuple]:
    """``{dotted key: (old, new)}`` for every value that differs; keys missing from ``old`` (added to mvtrack
    after the checkpoint was written) are compared with their value before they existed (``ADDED``), else skipped."""
    changes = {}
    for k, v in new.items():
        if k not in old:
            if ADDED.get(f"{prefix}{k}", v) != v:
                changes[f"{prefix}{k}"] = (ADDED[f"{prefix}{k}"], v)
            continue
        if isinstance(v, dict) and isinstance(old[k], dict) and k != "tasks":
            changes.update(config_changes(old[k], v, f"{prefix}{k}."))
        elif old[k] != v and not (isinstance(v, float) and isinstance(old[k], (int, float)) and float(old[k]) == v):
            changes[f"{prefix}{k}"] = (old[k], v)
    return changes


def check_resume(checkpoint: str | Path, config: dict) -> dict[str, tuple]:
    """The config changes between a checkpoint's run and ``config`` that a resume may make (``RESUMABLE``);
    raises ``ValueError`` listing the others, which would change what is trained under the same run."""
    try:
        old = json.loads((Path(checkpoint) / "trainer.json").read_text()).get("config")
    except (OSError, ValueError) as e:
        raise ValueError(f"checkpoint {checkpoint}: trainer.json cannot be read ({e})") from None
    if not isinstance(old, dict):
        return {}  # written before configs were recorded: nothing to compare
    changes = config_changes(old, json.loads(json.dumps(config)))  # as trainer.json holds it: tuples are lists
    refused = {k: v for k, v in changes.items() if k not in RESUMABLE}
    if refused:
        listed = ", ".join(f"{k} ({a!r} -> {b!r})" for k, (a, b) in list(refused.items())[:4])
        listed += " ..." if len(refused) > 4 else ""
        raise ValueError(
            f"resume from {checkpoint}: the config differs from the run's in {listed}; "
            "resuming would train under settings its config.json would misreport: use the run's values, or start a new "
            "run in another output_dir"
        )
    return changes


def truncate_metrics(path: str | Path, step: int) -> int:
    """Keep the rows of a ``metrics.jsonl`` up to ``step`` (the resumed step); returns how many were dropped."""
    path = Path(path)
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and isinstance(row.get("step"), int) and row["step"] <= step
        except ValueError:
            ok = False
        if ok:
            kept.append(line)
        else:
            dropped += 1
    if dropped:
        _write_text_atomic(path, "".join(x + "\n" for x in kept))
    return dropped


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def save_checkpoint(
    output_dir: str | Path, step: int, model, ema, optimizer, scheduler, trainer_state: dict, keep: int = 2,
    extra: dict | None = None, trainable: list[str] | None = None,
) -> Path:
    """Write ``output_dir/checkpoints/step_{step:06d}`` atomically, point ``latest`` at it, prune old ones.

    ``extra`` maps names to training-only modules (e.g. the tracking head), saved as ``NAME.safetensors``.
    ``trainable``: the names of the parameters that train, when not all do: only they and the buffers are saved.
    """
    tmp = begin_checkpoint(output_dir, step, f"-{os.getpid()}")
    state = model.state_dict()
    if trainable is not None:
        kept = set(trainable) | {k for k, _ in model.named_buffers()}
        state = {k: v for k, v in state.items() if k in kept}
    state = {k: v.detach().float().cpu().contiguous() for k, v in state.items()}
    save_file(state, tmp / "model.safetensors")
    save_file({k: v.cpu().contiguous() for k, v in ema.state_dict().items()}, tmp / "ema.safetensors")
    write_model_config(tmp, model)
    for name, module in (extra or {}).items():
        tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        save_file(tensors, tmp / f"{name}.safetensors")
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    trainer = {**trainer_state, "step": step, "scheduler": scheduler.state_dict(), "ema_updates": ema.num_updates,
               "partial": trainable is not None}
    (tmp / "trainer.json").write_text(json.dumps(trainer, indent=2))
    return finish_checkpoint(output_dir, step, tmp, keep)


def begin_checkpoint(output_dir: str | Path, step: int, suffix: str = "") -> Path:
    """A fresh temporary directory for the checkpoint of ``step`` (``suffix`` tells writers apart; ranks writing
    one checkpoint together share it)."""
    root = Path(output_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-step_{step:06d}{suffix}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    return tmp


def finish_checkpoint(output_dir: str | Path, step: int, tmp: Path, keep: int) -> Path:
    """Rename a complete ``tmp`` into ``step_{step:06d}``, point ``latest`` at it and prune older checkpoints."""
    root = Path(output_dir) / "checkpoints"
    final = root / f"step_{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _write_text_atomic(root / LATEST, final.name)
    prune_checkpoints(output_dir, keep, step)
    return final


def write_model_config(directory: Path, model) -> None:
    config = json.dumps(dict(model.config), indent=2, default=str)  # a loaded model's _name_or_path is a Path
    (directory / "model_config.json").write_text(config)


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


def load_checkpoint(path: str | Path, model, ema, optimizer, scheduler, extra: dict | None = None,
                    trainable: list[str] | None = None) -> dict:
    """Restore everything ``save_checkpoint`` wrote; returns the trainer state (with ``step``). A partial checkpoint
    (``trainable`` given when saving) restores the ``trainable`` parameters and the buffers of a model rebuilt from
    the same base."""
    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(
            f"checkpoint: no checkpoint at {path} (expected step_*/trainer.json or checkpoints/latest)"
        )
    trainer = json.loads((ckpt / "trainer.json").read_text())
    state = load_file(ckpt / "model.safetensors")
    expected = model.state_dict()
    if trainer.get("partial"):
        needed = set(trainable or []) | {k for k, _ in model.named_buffers()}
        expected = {k: v for k, v in expected.items() if k in needed}
    for k, v in expected.items():
        if k not in state:
            raise ValueError(f"checkpoint {ckpt}: missing parameter {k}")
        if state[k].shape != v.shape:
            raise ValueError(
                f"checkpoint {ckpt}: {k} has shape {tuple(state[k].shape)}, the model expects {tuple(v.shape)}"
            )
    model.load_state_dict({k: state[k] for k in expected}, strict=not trainer.get("partial"))
    for name, module in (extra or {}).items():
        if not (ckpt / f"{name}.safetensors").is_file():
            raise ValueError(f"checkpoint {ckpt}: no {name}.safetensors (was it trained with the same objective?)")
        module.load_state_dict(load_file(ckpt / f"{name}.safetensors"))
    ema.load_state_dict(load_file(ckpt / "ema.safetensors"), trainer["ema_updates"])
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True))
    scheduler.load_state_dict(trainer["scheduler"])
    trainer["path"] = str(ckpt)
    return trainer


def is_sharded(checkpoint: str | Path) -> bool:
    """Whether a checkpoint directory holds sharded state (``state/``) rather than the older full files."""
    return (Path(checkpoint) / STATE_DIR).is_dir()


def read_weights(checkpoint: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """``(ema, model)`` full CPU tensors of a checkpoint of either format, read in this process alone."""
    ckpt = Path(checkpoint)
    if (ckpt / "deepspeed").is_dir():
        from .deepspeed import read_deepspeed_weights

        return read_deepspeed_weights(ckpt, json.loads((ckpt / "trainer.json").read_text()))
    if is_sharded(ckpt):
        return read_full(ckpt / STATE_DIR, "ema"), read_full(ckpt / STATE_DIR, "model")
    return load_file(ckpt / "ema.safetensors"), load_file(ckpt / "model.safetensors")


def training_metadata(config: dict, step: int) -> dict:
    """What ``mvtrack.json`` records beside exported weights: the data and objective the model was trained with."""
    meta = {
        "data": config["data"],
        "tasks": config["tasks"],
        "flow_shift": config["flow_shift"],
        "steps": step,
        "ema_decay": config["ema_decay"],
        "model": config["model"],
    }
    for key in ("trainable", "lora", "text"):  # absent from configs written before they existed
        if key in config:
            meta[key] = config[key]
    if config.get("track2view", {}).get("source") == "stereo":  # the tracks, and the scene scale, of inference
        from mvtrack.data.source_geometry import SCENE_DEPTH

        meta["tracks"] = "stereo"
        meta["scene"] = {"median_depth": SCENE_DEPTH}
    return meta


def _rebuild(config: dict):
    """The model a partial run trained, rebuilt from its config as the trainer built it (frozen weights from its base;
    a preset's from the run's seed), in float32: a merged LoRA is then ``W + BA`` exactly as loading the adapter
    gives it, not rounded to the bf16 the frozen weights may have trained in."""
    from .config import TrainConfig
    from .model import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        model, _ = build_model(TrainConfig.from_dict({**config, "weight_dtype": "float32"}))
    return model


def export_checkpoint(path: str | Path, directory: str | Path, dtype: torch.dtype = torch.float32,
                      lora: str | None = None, copy_text_encoder: bool = False) -> Path:
    """Write a checkpoint's EMA weights as a model directory ``load_model`` and ``MultiViewPipeline.from_model``
    read, with its ``mvtrack.json``.

    Pixel-space models are written flat (``config.json`` + safetensors); latent-space models, whose run started
    from a root with ``vae/``, as ``transformer/`` beside a copy of that root's ``vae/``, ``scheduler/`` and
    ``tokenizer/`` and its ``text_encoder/`` (a symbolic link to the base's, 11 GiB for Wan2.1, unless
    ``copy_text_encoder``), so the exported model samples as its base does (Wan2.1: UniPC, prompts). Weights are
    stored in ``dtype`` (float16 halves the size) except those Wan keeps in float32, and loaded back as float32.

    Args:
        lora: for a run with LoRA adapters: ``merge`` (folded into the weights: a self-contained model), ``adapter``
            (``adapter_config.json`` naming the base + ``adapter_model.safetensors`` with the adapters and every
            trained or added module; the base is read at load time), or None: the run's ``lora.export``.
    """
    from mvtrack.models import MultiViewTransformer
    from mvtrack.models.lora import has_lora, merge_lora
    from mvtrack.models.pretrained import ADAPTER_CONFIG, ADAPTER_WEIGHTS, keeps_fp32

    from .model import NEW_MODULES

    ckpt = find_checkpoint(path)
    if ckpt is None:
        raise FileNotFoundError(f"checkpoint: no checkpoint at {path}")
    trainer = json.loads((ckpt / "trainer.json").read_text())
    config = trainer["config"]
    if trainer.get("partial"):
        model = _rebuild(config)
    else:
        model_config = {
            k: v for k, v in json.loads((ckpt / "model_config.json").read_text()).items() if not k.startswith("_")
        }
        model = MultiViewTransformer.from_config(model_config)
    ema, trained = read_weights(ckpt)
    state = model.state_dict()
    missing = sorted(set(state) - set(trained) - set(ema)) if not trainer.get("partial") else sorted(
        k for k in trained if k not in state)
    if missing:
        raise ValueError(f"checkpoint {ckpt}: the weights do not fit the model its config describes ({missing[:3]})")
    # parameters from the EMA; buffers (BatchNorm running statistics of a paper-style Track4Gen refiner) from the
    # trained model, the EMA averages parameters only; frozen weights from the base (partial runs)
    model.load_state_dict({**state, **trained, **{k: v for k, v in ema.items() if k in state}})
    mode = lora or config.get("lora", {}).get("export", "merge")
    if mode not in ("merge", "adapter"):
        raise ValueError(f"lora: expected merge or adapter, got {mode!r}")
    adapter = has_lora(model) and mode == "adapter"
    base = Path(config["model"])
    if adapter and not base.is_dir():
        raise ValueError(f"export --lora adapter: the run's base model {config['model']!r} is not a directory (a "
                         "preset's frozen weights exist only in the run); export with --lora merge")
    if has_lora(model) and not adapter:
        merge_lora(model)
    directory = Path(directory)
    root = base if base.is_dir() and not (base / "config.json").is_file() else None  # a root with components
    weights_dir = directory / "transformer" if root is not None and (root / "vae").is_dir() else directory
    weights_dir.mkdir(parents=True, exist_ok=True)
    model.save_config(weights_dir)
    state = model.state_dict()

    def stored(k, v):  # Wan's float32 modules stay float32 (loading restores them to float32 anyway)
        return v.detach().to(torch.float32 if keeps_fp32(model, k) else dtype).contiguous()

    if adapter:
        keep = set(ema) | {k for k in state if ".lora_" in k or k.startswith(NEW_MODULES) or k == "null_context"}
        save_file({k: stored(k, v) for k, v in state.items() if k in keep}, weights_dir / ADAPTER_WEIGHTS)
        targets = sorted({k.rsplit(".lora_", 1)[0] for k in state if ".lora_" in k})
        lora_cfg = config["lora"]
        (weights_dir / ADAPTER_CONFIG).write_text(json.dumps({
            "base_model_name_or_path": str(base.resolve()), "peft_type": "LORA", "r": lora_cfg["rank"],
            "lora_alpha": lora_cfg["alpha"] if lora_cfg["alpha"] is not None else lora_cfg["rank"],
            "target_modules": targets}, indent=2))
    else:
        save_file({k: stored(k, v) for k, v in state.items()}, weights_dir / "diffusion_pytorch_model.safetensors")
    if root is not None and weights_dir != directory:
        for name in ("vae", "scheduler", "tokenizer"):
            if (root / name).is_dir():
                shutil.copytree(root / name, directory / name, dirs_exist_ok=True)
        if (root / "text_encoder").is_dir():
            target = directory / "text_encoder"
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.is_dir():
                shutil.rmtree(target)
            if copy_text_encoder:
                shutil.copytree(root / "text_encoder", target)
            else:
                target.symlink_to((root / "text_encoder").resolve(), target_is_directory=True)
    meta = training_metadata(config, trainer["step"])
    (directory / "mvtrack.json").write_text(json.dumps(meta, indent=2))
    return directory
