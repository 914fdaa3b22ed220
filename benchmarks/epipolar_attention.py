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
import os
import platform
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from mvtrack.models.epipolar import _attention, build_epipolar_mask, token_epipolar_distances
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

# views, frames, pixels, tokens per frame side (8x8 patches), heads x head width of the preset
SIZES = {
    "S": {"views": 2, "frames": 8, "height": 64, "width": 64, "patch": 8, "heads": 5, "head_dim": 64},
    "B": {"views": 4, "frames": 16, "height": 128, "width": 128, "patch": 8, "heads": 12, "head_dim": 64},
}
CPU_QUICK_B_FRAMES = 4  # B on CPU with --quick: 16 -> 4 frames (L 16384 -> 4096)


def cpu_shared() -> bool:
    """Whether a training job shares this machine's CPU."""
    try:
        return subprocess.run(["pgrep", "-f", "mvtrack train"], capture_output=True, check=False).returncode == 0
    except FileNotFoundError:
        return False


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def mib(b: float) -> str:
    return f"{b / 2**20:,.1f} MiB"


class Timer:
    def __init__(self, device: str, repeats: int, warmup: int):
        self.cuda = device.startswith("cuda")
        self.repeats, self.warmup = repeats, warmup

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def __call__(self, fn, warmup: int | None = None) -> float:
        """Median wall time of ``fn()`` in ms after the warm-up calls."""
        for _ in range(self.warmup if warmup is None else warmup):
            fn()
        times = []
        for _ in range(self.repeats):
            self.sync()
            t0 = time.perf_counter()
            fn()
            self.sync()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)

    def once(self, fn) -> float:
        """Wall time of one ``fn()`` in ms (things built once)."""
        self.sync()
        t0 = time.perf_counter()
        fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3

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


def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def masked(mask, which: str):
    """The attention ``mvtrack.models.epipolar`` runs for ``mask.<which>`` (dense SDPA or flex by ``mask.backend``)."""
    return lambda q, k, v: _attention(q, k, v, mask, which)


def qkv(shape, device, dtype, seed=0):
    """Random q, k, v (requiring grad) and an output gradient."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    q, k, v, g = (torch.randn(shape, generator=gen).to(device=device, dtype=dtype) for _ in range(4))
    return q.requires_grad_(True), k.requires_grad_(True), v.requires_grad_(True), g


class Case:
    """One forward + backward of ``attend`` on fresh random inputs of ``shape``, timed and measured."""

    def __init__(self, timer: Timer, shape, device, dtype, seed=0):
        self.timer = timer
        self.q, self.k, self.v, self.g = qkv(shape, device, dtype, seed)

    def run(self, attend):
        def step():
            for t in (self.q, self.k, self.v):
                t.grad = None
            attend(self.q, self.k, self.v).backward(self.g)
        return step

    def measure(self, attend, *held, warmup=None) -> tuple[float, int]:
        """(median ms, peak bytes): the op's peak above the baseline plus its inputs and the tensors in ``held``."""
        step = self.run(attend)
        ms = self.timer(step, warmup)
        mem = self.timer.peak_bytes(step, self.q, self.k, self.v) + nbytes(self.q, self.k, self.v, self.g, *held)
        return ms, mem


class Bands:
    """Bands (in tokens) for target densities, from the token distances of one camera set."""

    def __init__(self, d: torch.Tensor):
        B, Fr, V, _, n, _ = d.shape
        off = ~torch.eye(V, dtype=torch.bool, device=d.device)
        self.d_off = d[:, :, off].flatten().sort().values  # cross-view, same-frame pairs
        self.B, self.F, self.V, self.n = B, Fr, V, n
        self.L = V * Fr * n
        self.max = float(self.d_off[-1]) + 1.0

    def cross(self, band: float) -> float:
        """Share of the cross-view, same-frame (query, key) pairs within ``band``."""
        hits = torch.searchsorted(self.d_off, torch.tensor(band, device=self.d_off.device), right=True)
        return float(hits) / self.d_off.numel()

    def joint(self, band: float) -> float:
        """Density of the joint mask (``cross_frames=False``): the own view, plus the band in other views' frame."""
        B, V, Fr, n, L = self.B, self.V, self.F, self.n, self.L
        return (B * V * (Fr * n) ** 2 + self.cross(band) * self.d_off.numel()) / (B * L * L)

    def per_frame(self, band: float) -> float:
        """Density of the per-frame mask (module mode)."""
        B, V, Fr, n = self.B, self.V, self.F, self.n
        return (B * Fr * V * n * n + self.cross(band) * self.d_off.numel()) / (B * Fr * (V * n) ** 2)

    def bisect(self, fn, target: float, iters: int = 60) -> float:
        """The band in [0, max] whose ``fn(band)`` (non-decreasing in it) is closest to ``target``."""
        lo, hi = 0.0, self.max
        if fn(lo) >= target:
            return lo
        if fn(hi) <= target:
            return hi
        for _ in range(iters):
            mid = (lo + hi) / 2
            if fn(mid) >= target:
                hi = mid
            else:
                lo = mid
        return hi if abs(fn(hi) - target) <= abs(fn(lo) - target) else lo


def bench_size(size: str, cfg: dict, args, timer: Timer, device: str, dtype, targets, row):
    cuda = device == "cuda"
    V, Fr, H, W, P, heads, D = (cfg[k] for k in ("views", "frames", "height", "width", "patch", "heads", "head_dim"))
    grid = (H // P, W // P)
    n = grid[0] * grid[1]
    L = V * Fr * n
    Bn = args.batch
    clip = render_clips(SynthConfig(views=V, frames=Fr, height=H, width=W, num_tracks=16),
                        [clip_seed(0, i) for i in range(Bn)])
    w2c, K = clip.w2c.to(device), clip.K.to(device)

    def build(band, joint, decay=None):
        mask = build_epipolar_mask(w2c, K, (H, W), grid, band=band, decay=decay, dtype=dtype)
        _ = mask.joint if joint else mask.per_frame  # the dense mask SDPA reads, built and cached now
        return mask

    def out(variant, target, density, ms, mem, notes):
        row(size, L, variant, target, density, ms, ref, mem, notes)

    # --- full attention: the reference
    joint_case = Case(timer, (Bn, heads, L, D), device, dtype)
    ref, mem = joint_case.measure(sdpa)
    out("full attention (SDPA, no mask)", None, 1.0, ref, mib(mem),
        f"{V} views x {Fr} frames x {grid[0]}x{grid[1]} tokens, {heads} heads x {D}")

    # --- the band of each target, by bisection on the distances of these cameras
    bands = Bands(token_epipolar_distances(w2c, K, (H, W), grid))
    print(f"| {size} | {L:,} | (reachable: joint {bands.joint(0.0):.1%}-{bands.joint(bands.max):.1%}, per-frame "
          f"{bands.per_frame(0.0):.1%}-100%) | | | | | | |", flush=True)
    if args.match == "cross":
        picks = [(t, bands.bisect(bands.cross, t), bands.bisect(bands.cross, t)) for t in targets]
    else:
        picks = [(t, bands.bisect(bands.joint, t), bands.bisect(bands.per_frame, t)) for t in targets]

    # --- processor mode: the backbone's joint attention under the joint mask
    flex_build = []
    for target, band, _ in picks:
        mask = build(band, joint=True)
        density = mask.density("joint")
        assert mask.joint is not None and abs(density - bands.joint(band)) < 1e-4, (density, band)
        notes = f"band {band:.2f} tok, cross-view share {bands.cross(band):.1%}"
        ms, mem = joint_case.measure(masked(mask, "joint"), mask.joint)
        out("processor: dense bool mask (SDPA)", target, mask.density("joint"), ms, mib(mem),
            f"{notes}; mask {mib(nbytes(mask.joint))}")
        if cuda:
            fmask = dataclasses.replace(mask, backend="flex", _cache={})
            fb_ms = timer.once(lambda m=fmask: m.flex("joint"))
            flex_build.append(fb_ms)
            ms, mem = joint_case.measure(masked(fmask, "joint"), mask.joint, warmup=max(timer.warmup, 2))
            out("processor: FlexAttention block mask (compiled)", target, mask.density("joint"), ms, mib(mem),
                f"{notes}; block mask built once per camera set in {fb_ms:,.1f} ms; its mask_mod indexes the "
                "per-frame pair mask")
            del fmask
        del mask

    # --- CVD's soft mask: every same-frame pair keeps a finite bias, so its cost does not depend on the band
    band_s = picks[len(picks) // 2][1]
    soft = build(band_s, joint=True, decay=args.decay)
    notes = f"band {band_s:.2f} tok, decay {args.decay:g}; cost independent of the band; bias {mib(nbytes(soft.joint))}"
    ms, mem = joint_case.measure(masked(soft, "joint"), soft.joint)
    out("processor: dense float bias (CVD soft mask, SDPA)", None, soft.density("joint"), ms, mib(mem), notes)
    if cuda:
        fsoft = dataclasses.replace(soft, backend="flex", _cache={})
        fsoft.flex("joint")
        # the flex closures hold the per-frame pair bias and its boolean `allowed`, not an L x L mask
        ms, mem = joint_case.measure(masked(fsoft, "joint"), soft.joint, warmup=max(timer.warmup, 2))
        out("processor: FlexAttention soft (block mask + score_mod)", None, soft.density("joint"), ms,
            mib(mem), notes)
        del fsoft
    del soft, joint_case

    # --- module mode: B*F groups of the V*n tokens of one frame, IN ADDITION to the block's full attention
    frame_case = Case(timer, (Bn * Fr, heads, V * n, D), device, dtype, seed=1)
    ms, mem = frame_case.measure(sdpa)
    out("module: per-frame, no mask (SDPA)", None, 1.0, ms, mib(mem), f"{Bn * Fr} groups of {V * n} tokens")
    for target, _, band in picks:
        mask = build(band, joint=False)
        notes = f"band {band:.2f} tok, cross-view share {bands.cross(band):.1%}"
        if mask.per_frame is None:
            notes += "; the mask allows everything: no mask"
        ms, mem = frame_case.measure(masked(mask, "per_frame"), mask.per_frame)
        out("module: per-frame dense bool mask (SDPA)", target, mask.density("per_frame"), ms, mib(mem), notes)
        if cuda and mask.per_frame is not None:
            fmask = dataclasses.replace(mask, backend="flex", _cache={})
            fmask.flex("per_frame")
            ms, mem = frame_case.measure(masked(fmask, "per_frame"), mask.per_frame, warmup=max(timer.warmup, 2))
            out("module: per-frame FlexAttention (compiled)", target, mask.density("per_frame"), ms, mib(mem), notes)
            del fmask
        del mask
    del frame_case

    # --- building the masks, once per camera set (the middle target's band)
    joint_ms = timer(lambda: build(band_s, joint=True), 1)
    frame_ms = timer(lambda: build(band_s, joint=False), 1)
    flex_note = f"; FlexAttention block mask from the joint mask: {statistics.median(flex_build):,.1f} ms" \
        if flex_build else ""
    out("mask build (`build_epipolar_mask`, joint)", None, None, joint_ms, "—",
        f"ms per camera set of {Bn} clip(s), not fwd+bwd; per-frame mask only (module mode): {frame_ms:,.2f} ms"
        + flex_note)
    if not cuda:
        out("FlexAttention (processor or module)", None, None, "n/a (no CPU backward)", "—",
            "FlexAttention raises NotImplementedError for backward on CPU")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--sizes", default="S,B", help="comma-separated, of S,B")
    p.add_argument("--densities", default="0.1,0.25,0.5", help="target densities, comma-separated")
    p.add_argument("--match", default="cross", choices=["cross", "mask"],
                   help="cross: the target is the band's share of cross-view same-frame pairs; mask: each row's "
                        "own mask density (clamped to its reachable range)")
    p.add_argument("--batch", type=int, default=1, help="camera sets (clips); every variant is linear in it")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (default 10, --quick 5)")
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
    repeats = args.repeats or (5 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    targets = [float(x) for x in args.densities.split(",")]
    sizes = [s.strip() for s in args.sizes.split(",")]
    for s in sizes:
        if s not in SIZES:
            sys.exit(f"--sizes: expected some of {sorted(SIZES)}, got {s!r}")
    timer = Timer(device, repeats, warmup)
    flex_note = "n/a"
    if cuda:
        from mvtrack.models.epipolar import _compiled_flex

        # the module's torch.compile(flex_attention), which _attention(backend="flex") calls, as the model runs it
        flex_note = f"{type(_compiled_flex(torch.device('cuda'))).__name__} (torch.compile'd flex_attention)"
        # one compiled graph per (shape, score_mod or not): 3 per size; new masks of the same shape reuse it
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 16)
    shared = cpu_shared()
    load_start = os.getloadavg()[0]

    dev_name = torch.cuda.get_device_name() if cuda else (platform.processor() or platform.machine())
    print(f"# epipolar attention benchmark, {datetime.date.today()}")
    print(f"device: {device} ({dev_name}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads, "
          f"dtype {str(dtype).replace('torch.', '')}, batch {args.batch}, {repeats} timed repeats after {warmup} "
          f"warm-up, median; FlexAttention: {flex_note}")
    print(f"CPU shared with a training job (pgrep -f 'mvtrack train'): {'yes' if shared else 'no'}; 1-min load "
          f"average at start {load_start:.2f} on {os.cpu_count()} CPUs (well above 0: other work was running)")
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
        ratio = "—" if isinstance(ms, str) or variant.startswith("mask build") else f"{ms / ref:.2f}"
        print(f"| {size} | {L:,} | {variant} | {tgt} | {dens} | {ms_s} | {ratio} | {mem} | {notes} |", flush=True)

    for size in sizes:
        cfg = dict(SIZES[size])
        if size == "B":
            frames = args.b_frames or (CPU_QUICK_B_FRAMES if (args.quick and not cuda) else cfg["frames"])
            if frames != cfg["frames"]:
                print(f"| {size} | {cfg['views'] * frames * (cfg['height'] // cfg['patch']) * (cfg['width'] // cfg['patch']):,} | (B with {frames} frames, not {cfg['frames']}: "
                      f"{'CPU --quick' if args.b_frames is None else '--b-frames'}) | | | | | | |")
            cfg["frames"] = frames
        t0 = time.perf_counter()
        bench_size(size, cfg, args, timer, device, dtype, targets, row)
        print(f"<!-- {size}: {time.perf_counter() - t0:.0f} s -->", flush=True)
        if cuda:
            torch.cuda.empty_cache()
    print(f"\n1-min load average at the end {os.getloadavg()[0]:.2f} (this script keeps {torch.get_num_threads()} "
          f"threads busy); training job at the end: {'yes' if cpu_shared() else 'no'}")


if __name__ == "__main__":
    main()
