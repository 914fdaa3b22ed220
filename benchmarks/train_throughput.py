"""Training throughput of the backbone: step time, tokens/s, MFU and peak memory per model size.

Goal (issue 3): MFU >= 40% for B on an H100 in bf16. One optimizer step = forward + backward + AdamW on random
inputs of the training shape (V views x F frames x H x W pixels, patch 8 -> tokens); data loading is excluded.
MFU counts matmul FLOPs only: 6 x (weights applied per token) + 12 x layers x L x D per token for attention
scores and values (the usual transformer estimate), against the device's dense peak (--peak-tflops).

    python benchmarks/train_throughput.py --presets tiny S --device cpu --batch 2
    python benchmarks/train_throughput.py --presets S B --device cuda --batch 8 --size 256 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import torch
from torch import nn

from mvtrack.models import build_model


def matmul_flops_per_step(model, batch: int, tokens: int) -> float:
    """6 x per-token weight FLOPs + attention FLOPs, for a forward+backward over ``batch`` x ``tokens``."""
    cfg = model.wan.config
    dim = cfg.num_attention_heads * cfg.attention_head_dim
    per_token = 0
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv3d)) and "condition_embedder" not in name:
            per_token += module.weight.numel()
    # cross-attention keys/values see only the context tokens, not every video token
    for block in model.wan.blocks:
        per_token -= block.attn2.to_k.weight.numel() + block.attn2.to_v.weight.numel()
    attention = 2 * 2 * tokens * dim * cfg.num_layers  # QK^T and AV, multiply-adds x 2
    return 3 * batch * tokens * (2 * per_token + attention)


def measure(name: str, device: str, batch: int, views: int, frames: int, size: int, steps: int, dtype) -> dict:
    torch.manual_seed(0)
    model = build_model(name).to(device)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    sample = torch.randn(batch, views, frames, 3, size, size, device=device)
    timestep = torch.rand(batch, views, frames, device=device) * 1000
    camera = torch.randn(batch, views, frames, 6, size, size, device=device)
    p = model.patch_size
    tokens = views * frames * (size // p[1]) * (size // p[2])
    cuda = device.startswith("cuda")

    def step():
        with torch.autocast(device_type="cuda" if cuda else "cpu", dtype=dtype, enabled=dtype != torch.float32):
            loss = model(sample, timestep, camera).sample.float().square().mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    flops = matmul_flops_per_step(model, batch, tokens)
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "model": name,
        "params_M": sum(q.numel() for q in model.parameters()) / 1e6,
        "tokens": tokens,
        "step_s": seconds,
        "tokens_per_s": batch * tokens / seconds,
        "tflops": flops / seconds / 1e12,
        "peak_gib": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "S"])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="dense peak of the device for MFU (H100 SXM bf16: 989)"
    )
    args = parser.parse_args()
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[
        args.dtype or ("bf16" if args.device.startswith("cuda") else "fp32")
    ]
    where = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    print(
        f"device: {where}; dtype {dtype}; batch {args.batch}; {args.views} views x {args.frames} frames x {args.size}^2"
    )
    print("| model | params (M) | tokens/sample | step (s) | tokens/s | TFLOP/s | MFU | peak mem (GiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.presets:
        r = measure(name, args.device, args.batch, args.views, args.frames, args.size, args.steps, dtype)
        mfu = f"{100 * r['tflops'] / args.peak_tflops:.1f}%" if args.peak_tflops else "n/a"
        mem = f"{r['peak_gib']:.2f}" + ("" if args.device.startswith("cuda") else " (process RSS)")
        print(
            f"| {r['model']} | {r['params_M']:.2f} | {r['tokens']} | {r['step_s']:.3f} | {r['tokens_per_s']:.0f} | "
            f"{r['tflops']:.3f} | {mfu} | {mem} |"
        )


if __name__ == "__main__":
    main()
