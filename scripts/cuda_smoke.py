"""First thing to run on a GPU: two training steps of every Wan2.1 recipe and one sample from each export, with
peak memory. NOT RUN YET (no GPU has been lent to this project); docs/models.md says so until its figures are in.

Each recipe (configs/wan2.1-1.3b) trains ``--steps`` optimizer steps on the synthetic engine (rendered on the GPU)
from a local Wan2.1-T2V-1.3B diffusers root, exports final/ (LoRA merged, the root's UniPC scheduler, tokenizer and
text encoder kept), reloads it in bf16 and re-renders one clip with a prompt and classifier-free guidance. It
checks on the way what the CPU tests cannot: the EMA and every trained parameter live on the GPU, frozen weights are
bf16 but for Wan's float32 modules, FlexAttention runs CVD's epipolar masks (backend auto), the export samples
with UniPC. Peak memory is ``torch.cuda.max_memory_allocated`` per phase; results go to OUT/smoke.json and a
Markdown table on stdout (paste it into docs/models.md in place of the estimates).

    python scripts/cuda_smoke.py --model /path/to/Wan2.1-T2V-1.3B-Diffusers --out outputs/cuda_smoke
    python scripts/cuda_smoke.py --model ... --small            # the 49-frame 320x576 variants
    python scripts/cuda_smoke.py --model ... --recipes cvd --steps 2
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("camera_only", "mvtrack4gen", "track2view", "cvd", "track4gen")


def gib(n: int) -> float:
    return round(n / 2**30, 2)


def _cuda(device: str, name: str) -> int:
    """``torch.cuda.<name>()`` on a GPU run; 0 elsewhere (the CPU tests)."""
    return (getattr(torch.cuda, name)() or 0) if device == "cuda" else 0


def train_and_sample(recipe: Path, model: str, out: Path, steps: int, sample_steps: int, overrides=(),
                     device: str = "cuda") -> dict:
    """Train, export, reload and sample one recipe; ``overrides`` (``--set`` items) and ``device`` let the CPU tests
    run it on the tiny stand-in (tests/training/test_wan_recipes.py)."""
    from accelerate.state import AcceleratorState

    from mvtrack.models.pretrained import keeps_fp32
    from mvtrack.pipelines import MultiViewPipeline
    from mvtrack.training import TrainConfig, Trainer

    row = {"recipe": str(recipe.relative_to(ROOT))}
    cfg = TrainConfig.from_yaml(recipe, [f"model={model}", f"output_dir={out}", f"max_steps={steps}",
                                         f"checkpoint_every={steps}", "log_every=1", "warmup_steps=1", *overrides])
    _cuda(device, "reset_peak_memory_stats")
    start = time.perf_counter()
    trainer = Trainer(cfg, resume=False)
    net = trainer.unwrapped
    row["build_s"] = round(time.perf_counter() - start, 1)
    row["after_build_gib"] = gib(_cuda(device, "memory_allocated"))
    wrong = [k for k, v in trainer.ema.shadow.items() if v.device.type != device]
    wrong += [n for n, p in net.named_parameters() if p.device.type != device]
    assert not wrong, f"not on the GPU: {wrong[:3]}"
    bad = [n for n, p in net.named_parameters() if not p.requires_grad and p.dtype != (
        torch.float32 if keeps_fp32(net, n) else torch.bfloat16)]
    assert not bad, f"frozen weights not in bf16 (or Wan's float32 modules not float32): {bad[:3]}"
    _cuda(device, "reset_peak_memory_stats")
    start = time.perf_counter()
    metrics = trainer.train()
    _cuda(device, "synchronize")
    row.update(train_s_per_step=round((time.perf_counter() - start) / steps, 2), loss=metrics.get("loss"),
               train_peak_gib=gib(_cuda(device, "max_memory_allocated")), trained_params=sum(
                   p.numel() for p in net.parameters() if p.requires_grad))
    clip = trainer.batches.get(0)
    trainer.accelerator.end_training()
    del trainer, net
    gc.collect()
    _cuda(device, "empty_cache")
    AcceleratorState._reset_state()  # the next recipe builds its own Accelerator
    _cuda(device, "reset_peak_memory_stats")
    pipe = MultiViewPipeline.from_model(out / "final", torch.bfloat16, device=device)
    row["scheduler"] = type(pipe.scheduler).__name__
    row["flex_attention"] = bool(pipe.transformer.config.epipolar) and device == "cuda"
    start = time.perf_counter()
    video = pipe(clip.w2c[:1], clip.K[:1], clip.video[:1], "rerender", num_inference_steps=sample_steps,
                 prompt="a synthetic 3D scene of textured objects moving over a textured ground",
                 guidance_scale=5.0, generator=torch.Generator().manual_seed(0)).video
    _cuda(device, "synchronize")
    row.update(sample_s=round(time.perf_counter() - start, 1), sample_peak_gib=gib(_cuda(device, "max_memory_allocated")),
               sample_finite=bool(torch.isfinite(video).all()))
    del pipe, video
    gc.collect()
    _cuda(device, "empty_cache")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Local Wan2.1-T2V-1.3B diffusers root.")
    parser.add_argument("--out", type=Path, default=Path("outputs/cuda_smoke"))
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=RECIPES)
    parser.add_argument("--small", action="store_true", help="the 49-frame 320x576 variants")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--sample-steps", type=int, default=4)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("error: no CUDA device (this script checks GPU training and sampling; the CPU tests cover the rest)",
              file=sys.stderr)
        return 2
    folder = ROOT / "configs" / "wan2.1-1.3b" / ("49f_320x576" if args.small else "")
    device = f"{torch.cuda.get_device_name()} ({gib(torch.cuda.get_device_properties(0).total_memory)} GiB), torch " \
             f"{torch.__version__}"
    rows = []
    for name in args.recipes:
        print(f"== {name}", flush=True)
        try:
            rows.append(train_and_sample(folder / f"{name}.yaml", args.model, args.out / name, args.steps,
                                         args.sample_steps))
        except Exception as e:  # report every recipe, then fail
            traceback.print_exc()
            rows.append({"recipe": name, "error": f"{type(e).__name__}: {e}"})
            gc.collect()
            torch.cuda.empty_cache()
        print(json.dumps(rows[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "smoke.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    print(f"\nMeasured on {device}, batch 1, {args.steps} steps:\n")
    print("| recipe | trained params | train peak | s / step | sample peak | sample s | scheduler |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['recipe']} | failed: {r['error'][:80]} | | | | | |")
        else:
            print(f"| {r['recipe']} | {r['trained_params'] / 1e6:.0f} M | {r['train_peak_gib']} GiB | "
                  f"{r['train_s_per_step']} | {r['sample_peak_gib']} GiB | {r['sample_s']} | {r['scheduler']} |")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
