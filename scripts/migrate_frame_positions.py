"""Migrate a Track2View model trained before the frame-position fix (2026-11-25) to the fixed code, exactly.

Until then the per-track transformer's "frame positions" were one vector for every frame (``fourier_features`` of
a (F,) tensor flattened the frames into channels), so those models saw no frame order, only a constant added to
every track token. That constant is folded into ``geometry_in.bias`` (which is added to every token as well) and
the model is marked ``frame_positions: false``: its outputs at the frame count it was trained with are unchanged.

    python scripts/migrate_frame_positions.py MODEL_DIR --frames 8
"""

from __future__ import annotations

import argparse
import math

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from mvtrack.models import load_model


def legacy_frame_vector(frames: int, width: int, bands: int = 4) -> torch.Tensor:
    """The constant the old code added to every track token: (width,)."""
    freqs = math.pi * 2.0 ** torch.arange(bands, dtype=torch.float32)
    angles = torch.linspace(-1, 1, frames)[:, None] * freqs  # (F, bands)
    flat = torch.cat([angles.sin(), angles.cos()], -1).flatten()  # (F * 2 bands,)
    return nn.functional.pad(flat, (0, width - flat.shape[0]))  # pads, or crops when F * 2 bands > width


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--frames", type=int, required=True, help="the frame count the model was trained with")
    args = p.parse_args()
    model, _ = load_model(args.model)
    settings = dict(model.config.track_conditioner or {})
    if model.conditioner is None or not model.conditioner.use_tokens:
        raise SystemExit(f"{args.model}: no tokens path to migrate")
    if settings.get("frame_positions") is False:
        raise SystemExit(f"{args.model}: already migrated (frame_positions: false)")
    c = model.conditioner
    with torch.no_grad():
        c.geometry_in.bias += legacy_frame_vector(args.frames, c.width).to(c.geometry_in.bias.dtype)
    c.frame_positions = False
    model.register_to_config(track_conditioner={**settings, "frame_positions": False})
    weights = Path(args.model) / "diffusion_pytorch_model.safetensors"  # as `mvtrack export` writes it
    dtype = next(iter(load_file(weights).values())).dtype
    model.save_config(args.model)
    save_file({k: v.detach().to(dtype).contiguous() for k, v in model.state_dict().items()}, weights)
    print(f"migrated {args.model}: constant folded into geometry_in.bias, frame_positions: false")


if __name__ == "__main__":
    main()
