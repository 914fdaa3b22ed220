"""Issue 19: write the default shipped from the real-footage experiment (docs/results.md): the EMA weights of arm
`head`, seed 0, at step 200, with its pixel head removed (the gate stays held at 1: where tracks land, the output
is the splat), stored as float16 safetensors (Wan's float32 modules stay float32), with its ``mvtrack.json``.
The model card beside the weights (README.md) is left as it is. Run from the repo root:
`python scripts/ship_real_default.py --run outputs/real_default_cpu/head_s0 --out weights/mvtrack-S`."""
import argparse
import json
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from mvtrack.models import load_model
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.training.checkpoint import export_checkpoint

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--run", default="outputs/real_default_cpu/head_s0")
parser.add_argument("--out", default="weights/mvtrack-S")
args = parser.parse_args()
out = Path(args.out)
with tempfile.TemporaryDirectory() as tmp:
    export_checkpoint(args.run, tmp)  # the latest checkpoint's EMA, float32
    model, _ = load_model(tmp)
    meta = json.loads((Path(tmp) / "mvtrack.json").read_text())
model.extend_track_conditioner(pixel_head=0)
out.mkdir(parents=True, exist_ok=True)
model.save_config(out)
save_file({k: v.detach().to(torch.float32 if keeps_fp32(model, k) else torch.float16).contiguous()
           for k, v in model.state_dict().items()}, out / "diffusion_pytorch_model.safetensors")
meta["derived"] = f"{args.run}, step {meta['steps']}, EMA; pixel head removed (scripts/ship_real_default.py)"
(out / "mvtrack.json").write_text(json.dumps(meta, indent=2))
print(f"wrote {out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
      f"{(out / 'diffusion_pytorch_model.safetensors').stat().st_size / 2**20:.1f} MiB")
