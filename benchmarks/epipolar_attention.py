"""Cost of CVD's epipolar attention (``mvtrack.models.epipolar``): forward + backward time and peak memory of the
attention op alone, masked by REAL epipolar masks of engine cameras, against full (unmasked) attention at the same
sequence length.

Rows per size (S: the embedded default's training clip; B: a GPU research clip):
- full attention: ``scaled_dot_product_attention`` with no mask at the joint length L = V * F * n (the reference);
- processor mode (the backbone's joint attention masked, ``cross_frames=False``), per target density:
  dense boolean mask through SDPA; on CUDA the FlexAttention block mask (compiled flex, as the model runs it);
- CVD's soft mask (dense float bias through SDPA; on CUDA flex with a ``score_mod``), once per size: every
  same-frame pair keeps a finite bias whatever the band, so its cost does not depend on the band;
- module mode (the zero-initialised cross-view module): attention over B*F groups of the V*n tokens of one frame,
  with its per-frame mask (dense through SDPA; flex on CUDA) and without one; it runs IN ADDITION to the backbone's
  full attention of the block, so its ratio is the extra cost of one module;
- mask build time: ``build_epipolar_mask`` per camera set (and the flex block mask, on CUDA).

Density. Within a view attention is always allowed, so a mask's density is at least 1/V (0.5 at V = 2), and with
``cross_frames=False`` the joint mask's density is at most 1/V + (V-1)/(V*F). The targets (``--densities``) are
therefore matched (``--match cross``, default) by the band's share of the cross-view, same-frame (query, key) pairs,
i.e. how much of another view a token may see; ``--match mask`` instead bisects each row's own mask density
(joint or per-frame) and clamps to the reachable range. Either way the achieved density of every mask is reported.

Memory. CUDA: ``torch.cuda.max_memory_allocated`` during one forward + backward, reset per row. CPU (no allocator
statistics): the torch.profiler's allocation events of one forward + backward (running peak of the CPU allocator's
allocations minus frees). Both are reported as that peak above what was allocated before the row, plus the row's
inputs (q, k, v, the output gradient and the mask it reads).

    nice -n 5 python benchmarks/epipolar_attention.py --device cpu --quick
    python benchmarks/epipolar_attention.py --device cuda --sizes S,B
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mvtrack.models.epipolar import EpipolarMask, _attention, build_epipolar_mask, token_epipolar_distances
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

# views, frames, pixels, tokens per frame side (8x8 patches), heads x head width of the preset
SIZES = {
    "S": dict(views=2, frames=8, height=64, width=64, patch=8, heads=5, head_dim=64),
    "B": dict(views=4, frames=16, height=128, width=128, patch=8, heads=12, head_dim=64),
}
CPU_QUICK_B_FRAMES = 4  # B on CPU with --quick: 16 -> 4 frames (L 16384 -> 4096)


def cpu_shared() -> bool:
    """Whether a training job shares this machine's CPU."""
    try:
        return subprocess.run(["pgrep", "-f", "mvtrack train"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


class Timer:
    def __init__(self, device: str):
        self.cuda = device.startswith("cuda")

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn, repeats: int, warmup: int) -> float:
        """Median wall time of ``fn()`` in ms after ``warmup`` calls."""
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def peak_bytes(self, fn, *inputs) -> int:
        """Peak bytes allocated by one ``fn()`` above what was allocated before it (the gradients of ``inputs`` are
        freed first, so that both devices count the fresh ones the same way)."""
        for t in inputs:
            t.grad = None
        if self.cuda:
            self.sync()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            fn()
            self.sync()
            return torch.cuda.max_memory_allocated() - base
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            fn()
        events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                        if e.name() == "[memory]" and str(e.device_type()).endswith("CPU"))
        cur = peak = 0
        for _, b in events:
            cur += b
            peak = max(peak, cur)
        return peak


def fwd_bwd(attend, q, k, v, g):
    """One forward + backward of ``attend(q, k, v)`` (fresh gradients, so they count in the memory)."""
    def run():
        for t in (q, k, v):
            t.grad = None
        attend(q, k, v).backward(g)
    return run


def qkv(shape, device, dtype, seed=0):
    gen = torch.Generator(device="cpu").manual_seed(seed)
    make = lambda: torch.randn(shape, generator=gen).to(device=device, dtype=dtype)  # noqa: E731
    q, k, v = (make().requires_grad_(True) for _ in range(3))
    return q, k, v, make()


def bisect(fn, target: float, hi: float, iters: int = 60) -> float:
    """The band in [0, hi] whose ``fn(band)`` (non-decreasing step function) is closest to ``target``."""
    if fn(0.0) >= target:
        return 0.0
    if fn(hi) <= target:
        return hi
    lo = 0.0
    for _ in range(iters):
        mid = (lo + hi) / 2
        if fn(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi if abs(fn(hi) - target) <= abs(fn(lo) - target) else lo


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sizes", default="S,B", help="comma-separated, of S,B")
    p.add_argument("--densities", default="0.1,0.25,0.5", help="target densities, comma-separated")
    p.add_argument("--match", default="cross", choices=["cross", "mask"],
                   help="cross: the target is the band's share of cross-view same-frame pairs; mask: each row's "
                        "own mask density (clamped to its reachable range)")
    p.add_argument("--batch", type=int, default=1, help="camera sets (clips); every variant is linear in it")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 10, --quick 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 2, --quick 1)")
    p.add_argument("--b-frames", type=int, default=None,
                   help=f"frames of B (default 16; CPU --quick: {CPU_QUICK_B_FRAMES})")
    p.add_argument("--decay", type=float, default=1.0, help="soft mask: bias per token beyond the band")
    p.add_argument("--dtype", default=None, choices=["float32", "bfloat16", "float16"],
                   help="default: float32 on CPU, bfloat16 on CUDA")
    p.add_argument("--quick", action="store_true", help="fewer repeats; B on CPU with fewer frames")
    args = p.parse_args()

    device = args.device
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda: no CUDA device")
    dtype = getattr(torch, args.dtype or ("bfloat16" if cuda else "float32"))
    repeats = args.repeats or (3 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    targets = [float(x) for x in args.densities.split(",")]
    sizes = [s.strip() for s in args.sizes.split(",")]
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"--sizes: expected some of {sorted(SIZES)}, got {s!r}")
    timer = Timer(device)
    flex_note = "n/a"
    if cuda:
        from mvtrack.models.epipolar import _compiled_flex

        # the module's torch.compile(flex_attention), which _attention(backend="flex") calls, as the model runs it
        flex_note = f"{type(_compiled_flex()).__name__} (torch.compile'd flex_attention)"
    shared = cpu_shared()

    dev_name = torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine())
    print(f"# epipolar attention benchmark, {datetime.date.today()}")
    print(f"device: {device} ({dev_name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"dtype {str(dtype).replace('torch.', '')}, batch {args.batch}, {repeats} timed repeats after {warmup} "
          f"warm-up, median; FlexAttention: {flex_note}")
    print(f"CPU shared with a training job (pgrep -f 'mvtrack train'): {'yes' if shared else 'no'}")
    print(f"targets matched by: {args.match}; memory: "
          + ("torch.cuda.max_memory_allocated above the row's baseline + the row's inputs" if cuda else
             "torch.profiler CPU allocation events (peak of allocations minus frees during one fwd+bwd) + the "
             "row's inputs (q, k, v, output grad, mask)"))
    print(f"command: {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print()
    print("| size | L | variant | target | density | fwd+bwd ms | vs full | peak memory | notes |")
    print("|---|---|---|---|---|---|---|---|---|")

    def row(size, L, variant, target, density, ms, ref, mem, notes):
        dens = "—" if density is None else f"{density:.1%}"
        tgt = "—" if target is None else f"{target:.0%}"
        ms_s = ms if isinstance(ms, str) else f"{ms:,.2f}"
        ratio = "—" if not isinstance(ms, float) or ref is None else f"{ms / ref:.2f}"
        print(f"| {size} | {L:,} | {variant} | {tgt} | {dens} | {ms_s} | {ratio} | {mem} | {notes} |", flush=True)

    for size in sizes:
        cfg = dict(SIZES[size])
        note_size = ""
        if size == "B":
            frames = args.b_frames or (CPU_QUICK_B_FRAMES if (args.quick and not cuda) else cfg["frames"])
            if frames != cfg["frames"]:
                note_size = f"B with {frames} frames, not {cfg['frames']} (CPU --quick)"
            cfg["frames"] = frames
        V, Fr, H, W, P, heads, D = (cfg[k] for k in ("views", "frames", "height", "width", "patch", "heads",
                                                     "head_dim"))
        grid = (H // P, W // P)
        n = grid[0] * grid[1]
        L = V * Fr * n
        Bn = args.batch
        clip = render_clips(SynthConfig(views=V, frames=Fr, height=H, width=W, num_tracks=16),
                            [clip_seed(0, i) for i in range(Bn)])
        w2c, K = clip.w2c.to(device), clip.K.to(device)
        if note_size:
            print(f"| {size} | {L:,} | ({note_size}) | | | | | | |")

        # --- full attention (reference)
        q, k, v, g = qkv((Bn, heads, L, D), device, dtype)
        run = fwd_bwd(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), q, k, v, g)
        ref = timer(run, repeats, warmup)
        mem = timer.peak_bytes(run, q, k, v) + nbytes(q, k, v, g)
        row(size, L, "full attention (SDPA, no mask)", None, 1.0, ref, ref, mib(mem),
            f"{V} views x {Fr} frames x {grid[0]}x{grid[1]} tokens, {heads} heads x {D}")

        # --- distances once; the band for each target by bisection
        d = token_epipolar_distances(w2c, K, (H, W), grid)  # (B, F, V, V, n, n)
        off = ~torch.eye(V, dtype=torch.bool, device=d.device)
        d_off = d[:, :, off].flatten().sort().values
        n_off = d_off.numel()
        band_max = float(d_off[-1]) + 1.0

        def cross(band):  # share of cross-view same-frame pairs within the band
            return float(torch.searchsorted(d_off, torch.tensor(band, device=d_off.device), right=True)) / n_off

        def joint_density(band):
            return (Bn * V * (Fr * n) ** 2 + cross(band) * n_off) / (Bn * L * L)

        def frame_density(band):
            return (Bn * Fr * V * n * n + cross(band) * n_off) / (Bn * Fr * (V * n) ** 2)

        lo_j, hi_j = 1 / V, 1 / V + (V - 1) / (V * Fr)
        print(f"| {size} | {L:,} | (reachable densities: joint {lo_j:.1%}-{hi_j:.1%}, per-frame "
              f"{1 / V:.1%}-100%) | | | | | | |", flush=True)

        t0 = time.perf_counter()
        mask_build_bands, flex_build = [], []
        for target in targets:
            if args.match == "cross":
                band_j = band_f = bisect(cross, target, band_max)
            else:
                band_j = bisect(joint_density, target, band_max)
                band_f = bisect(frame_density, target, band_max)
            mask_build_bands.append(band_j)

            # --- processor mode: the joint mask
            mask = build_epipolar_mask(w2c, K, (H, W), grid, band=band_j, joint=True, dtype=dtype)
            jd = mask.density
            assert mask.joint is not None and abs(jd - joint_density(band_j)) < 1e-6, (jd, joint_density(band_j))
            notes = f"band {band_j:.2f} tok, cross-view share {cross(band_j):.1%}"
            run = fwd_bwd(lambda q, k, v: _attention(q, k, v, mask, "joint"), q, k, v, g)
            ms = timer(run, repeats, warmup)
            mem = timer.peak_bytes(run, q, k, v) + nbytes(q, k, v, g, mask.joint)
            row(size, L, "processor: dense bool mask (SDPA)", target, jd, ms, ref, mib(mem),
                f"{notes}; mask {mib(nbytes(mask.joint))}")
            if cuda:
                fmask = dataclasses.replace(mask, backend="flex", _flex={})
                timer.sync()
                t_fb = time.perf_counter()
                fmask.flex_block_mask("joint")
                timer.sync()
                fb_ms = (time.perf_counter() - t_fb) * 1e3
                run = fwd_bwd(lambda q, k, v: _attention(q, k, v, fmask, "joint"), q, k, v, g)
                ms = timer(run, repeats, max(warmup, 2))  # the first call compiles
                mem = timer.peak_bytes(run, q, k, v) + nbytes(q, k, v, g, mask.joint)
                row(size, L, "processor: FlexAttention block mask (compiled)", target, jd, ms, ref, mib(mem),
                    f"{notes}; block mask built in {fb_ms:,.1f} ms (once per camera set); mask_mod reads the "
                    f"dense mask")
                del fmask
                flex_build.append(fb_ms)
            del mask

            # --- module mode: B*F groups of the V*n tokens of one frame
            fmask_m = build_epipolar_mask(w2c, K, (H, W), grid, band=band_f, joint=False)
            qm, km, vm, gm = qkv((Bn * Fr, heads, V * n, D), device, dtype, seed=1)
            pd = fmask_m.density
            notes_m = f"band {band_f:.2f} tok, cross-view share {cross(band_f):.1%}; {Bn * Fr} groups of {V * n}"
            run = fwd_bwd(lambda q, k, v: _attention(q, k, v, fmask_m, "per_frame"), qm, km, vm, gm)
            ms = timer(run, repeats, warmup)
            mem = timer.peak_bytes(run, qm, km, vm) + nbytes(qm, km, vm, gm, fmask_m.per_frame)
            row(size, L, "module: per-frame dense bool mask (SDPA)", target, pd, ms, ref, mib(mem),
                notes_m + ("" if fmask_m.per_frame is not None else "; mask allows everything -> no mask"))
            if cuda and fmask_m.per_frame is not None:
                ff = dataclasses.replace(fmask_m, backend="flex", _flex={})
                ff.flex_block_mask("per_frame")
                run = fwd_bwd(lambda q, k, v: _attention(q, k, v, ff, "per_frame"), qm, km, vm, gm)
                ms = timer(run, repeats, max(warmup, 2))
                mem = timer.peak_bytes(run, qm, km, vm) + nbytes(qm, km, vm, gm, fmask_m.per_frame)
                row(size, L, "module: per-frame FlexAttention (compiled)", target, pd, ms, ref, mib(mem), notes_m)
                del ff
            del fmask_m, qm, km, vm, gm

        # --- CVD's soft mask: finite bias on every same-frame pair, so one row per size
        band_s = mask_build_bands[len(mask_build_bands) // 2]
        soft = build_epipolar_mask(w2c, K, (H, W), grid, band=band_s, decay=args.decay, joint=True, dtype=dtype)
        notes = f"band {band_s:.2f} tok, decay {args.decay:g}; cost independent of band; bias {mib(nbytes(soft.joint))}"
        run = fwd_bwd(lambda q, k, v: _attention(q, k, v, soft, "joint"), q, k, v, g)
        ms = timer(run, repeats, warmup)
        mem = timer.peak_bytes(run, q, k, v) + nbytes(q, k, v, g, soft.joint)
        row(size, L, "processor: dense float bias (CVD soft mask, SDPA)", None, soft.density, ms, ref, mib(mem), notes)
        if cuda:
            fsoft = dataclasses.replace(soft, backend="flex", _flex={})
            fsoft.flex_block_mask("joint")
            run = fwd_bwd(lambda q, k, v: _attention(q, k, v, fsoft, "joint"), q, k, v, g)
            ms = timer(run, repeats, max(warmup, 2))
            mem = timer.peak_bytes(run, q, k, v) + nbytes(q, k, v, g, soft.joint, soft.joint)  # bias + its bool `allowed`
            row(size, L, "processor: FlexAttention soft (block mask + score_mod)", None, soft.density, ms, ref,
                mib(mem), notes)
            del fsoft
        del soft

        # --- building the masks, once per camera set (here: the middle target's band)
        build = lambda joint: build_epipolar_mask(w2c, K, (H, W), grid, band=band_s, joint=joint, dtype=dtype)  # noqa
        joint_ms = timer(lambda: build(True), repeats, 1)
        frame_ms = timer(lambda: build(False), repeats, 1)
        row(size, L, "mask build (`build_epipolar_mask`)", None, None, joint_ms, None, "—",
            f"ms per camera set (not fwd+bwd), joint + per-frame masks; per-frame only (module mode): "
            f"{frame_ms:,.2f} ms" + (f"; flex block mask from it: {statistics.median(flex_build):,.1f} ms"
                                     if flex_build else ""))
        if not cuda:
            row(size, L, "processor/module: FlexAttention block mask", None, None, "n/a (no CPU backward)", None,
                "—", "FlexAttention raises NotImplementedError for backward on CPU")

        # --- module with no mask (the per-frame attention's cost at band = inf)
        qm, km, vm, gm = qkv((Bn * Fr, heads, V * n, D), device, dtype, seed=1)
        run = fwd_bwd(lambda q, k, v: F.scaled_dot_product_attention(q, k, v), qm, km, vm, gm)
        ms = timer(run, repeats, warmup)
        mem = timer.peak_bytes(run, qm, km, vm) + nbytes(qm, km, vm, gm)
        row(size, L, "module: per-frame, no mask (SDPA)", None, 1.0, ms, ref, mib(mem),
            f"{Bn * Fr} groups of {V * n}; adds to the block's full attention")
        del q, k, v, g, qm, km, vm, gm, d, d_off
        print(f"<!-- {size}: {time.perf_counter() - t0:.0f} s -->", flush=True)
        if cuda:
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
