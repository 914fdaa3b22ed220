"""Cost of track supervision, track conditioning and epipolar attention: step time and peak memory of MVTrack4Gen
(pair head, MV-TAP-style head), Track4Gen (bottleneck refiner, the paper's), both, the Track2View conditioner (both
paths, tokens only, pixels only) and CVD's epipolar attention (module, processor), relative to the camera-only
objective, on the same model, data and step (forward + losses + backward + AdamW).

Goals: at most 10% more time and 10% more memory than camera-only at S and B for track supervision (issue 4), at
most 15% more time for the Track2View conditioner (issue 10). Each variant runs in its own subprocess so that peak
memory (CUDA: max allocated; CPU: peak RSS) belongs to it alone.

    python benchmarks/track_overhead.py --presets S --device cpu --batch 2 --size 64 --frames 8
    python benchmarks/track_overhead.py --presets S B --device cuda --batch 8 --size 256 --frames 16
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

T2V = {"blocks": "even", "width": 128, "layers": 2, "heads": 4, "max_token_tracks": 1024}
VARIANTS = {
    "camera-only": {},
    "MVTrack4Gen": {"layers": "middle2", "corr_weight": 0.01, "track_weight": 0.01},
    "Track4Gen": {"refiner_block": "middle"},
    "both": {"layers": "middle2", "corr_weight": 0.01, "track_weight": 0.01, "refiner_block": "middle"},
    # issue 14: configs/track_cpu/mvtrack4gen_mvtap.yaml and track4gen_paper.yaml
    "MVTrack4Gen MV-TAP": {"layers": "middle2", "corr_weight": 0.01, "track_weight": 0.01, "head": "mvtap",
                           "corr_heads": "per_head"},
    "Track4Gen paper": {"refiner_block": "middle", "refiner_style": "paper", "refiner_softargmax": "eq3",
                        "refiner_radius": 4.7, "refiner_weight": 0.63, "trainable": "track4gen"},
    # the conditioner of configs/track2view_cpu/track2view.yaml, fed --tracks mode-(b) paired tracks
    "Track2View": {"conditioner": {**T2V, "skip": True}},
    "Track2View tokens": {"conditioner": {**T2V, "pixels": False}},
    "Track2View pixels": {"conditioner": {**T2V, "tokens": False, "skip": True}},
    # issue 12: configs/cvd_cpu/cvd_module.yaml and cvd_processor.yaml (masks built every step, as the trainer does)
    "CVD module": {"epipolar": {"mode": "module", "blocks": "odd", "band": 1.5}},
    "CVD processor": {"epipolar": {"mode": "processor", "blocks": "odd", "band": 1.5}},
}


def run_variant(args) -> dict:
    """One variant in this process: time ``--steps`` optimizer steps after 2 warm-up steps."""
    import torch

    from mvtrack.data import source_depth_tracks
    from mvtrack.models import build_model, camera_condition
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips
    from mvtrack.tracking import TrackingConfig, TrackSupervision

    spec = dict(VARIANTS[args.variant])
    torch.manual_seed(0)
    probe = build_model(args.preset)
    n = probe.wan.config.num_layers
    if spec.get("layers") == "middle2":
        spec["layers"] = [n // 2 - 1, n // 2]
    if spec.get("refiner_block") == "middle":
        spec["refiner_block"] = n // 2
    conditioner = spec.pop("conditioner", None)
    if conditioner is not None:
        conditioner = dict(conditioner, blocks=list(range(0, n, 2)))
    epipolar = spec.pop("epipolar", None)
    if epipolar is not None:
        epipolar = dict(epipolar, blocks=list(range(1, n, 2)))
    model = build_model(args.preset, refiner_block=spec.get("refiner_block"), track_conditioner=conditioner,
                        refiner_style=spec.get("refiner_style", "bottleneck"), epipolar=epipolar)
    model = model.to(args.device).train()
    tracking = TrackingConfig(**spec, pairs=args.pairs)
    sup = TrackSupervision(tracking, model).to(args.device) if tracking.enabled else None
    if tracking.trainable == "track4gen":
        from mvtrack.models.refiner import track4gen_trainable

        keep = set(track4gen_trainable(model))
        for name, p in model.named_parameters():
            p.requires_grad_(name in keep)
    params = [p for p in model.parameters() if p.requires_grad] + (list(sup.parameters()) if sup is not None else [])
    opt = torch.optim.AdamW(params, lr=1e-4)
    clip = render_clips(SynthConfig(views=args.views, frames=args.frames, height=args.size, width=args.size,
                                    num_tracks=args.tracks, query_view=0), [clip_seed(0, i) for i in range(args.batch)])
    paired = source_depth_tracks(clip).to(args.device).model_inputs() if conditioner is not None else {}
    size = (args.size, args.size)
    x = (clip.video * 2 - 1).to(args.device)
    camera = camera_condition(clip.w2c, clip.K, size, size).to(args.device)
    timestep = torch.full(x.shape[:3], 500.0, device=args.device)
    tracks, visible = clip.tracks.to(args.device), clip.visible.to(args.device)
    cuda = args.device.startswith("cuda")

    def step(i):
        mask = model.epipolar_mask(clip.w2c.to(args.device), clip.K.to(args.device), size, size)
        with torch.autocast("cuda" if cuda else "cpu", dtype=torch.bfloat16, enabled=cuda):
            loss = model(x, timestep, camera, epipolar=mask, **paired).sample.float().square().mean()
            if sup is not None:
                loss = loss + sup.losses(model, tracks, visible, size, torch.Generator().manual_seed(i))["total"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if sup is not None:
            sup.clear(model)

    for i in range(2):
        step(i)
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for i in range(args.steps):
        step(i)
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / args.steps
    memory = torch.cuda.max_memory_allocated() / 2**30 if cuda else resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"step_s": seconds, "memory_gib": memory, "tracking": {k: v for k, v in spec.items()},
            "conditioner": conditioner}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["S"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--views", type=int, default=2)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--pairs", type=int, default=64)
    p.add_argument("--tracks", type=int, default=2048, help="tracks per clip (queried in view 0)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
                   help=f"which to run, camera-only first (default: all of {list(VARIANTS)})")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--preset", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.variant:  # child process
        print(json.dumps(run_variant(args)))
        return
    memory_kind = "max allocated (CUDA)" if args.device.startswith("cuda") else "peak RSS of the process"
    print(f"device {args.device} ({platform.processor() or platform.machine()}), batch {args.batch}, "
          f"{args.views} views x {args.frames} frames x {args.size}^2, {args.pairs} pairs per clip, {args.tracks} "
          f"paired tracks per clip (Track2View), "
          f"{args.steps} timed steps; memory = {memory_kind}")
    print("| model | variant | step (s) | time vs camera-only | memory (GiB) | memory vs camera-only |")
    print("|---|---|---|---|---|---|")
    for preset in args.presets:
        base = None
        for variant in ["camera-only"] + [v for v in args.variants if v != "camera-only"]:
            cmd = [sys.executable, __file__, "--variant", variant, "--preset", preset] + [
                f"--{k}={getattr(args, k)}"
                for k in ("device", "batch", "views", "frames", "size", "pairs", "tracks", "steps")]
            out = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            base = base or out
            print(f"| {preset} | {variant} | {out['step_s']:.3f} | {out['step_s'] / base['step_s']:.3f} | "
                  f"{out['memory_gib']:.2f} | {out['memory_gib'] / base['memory_gib']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
