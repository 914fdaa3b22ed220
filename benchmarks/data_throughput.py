"""Data-loading throughput: clips per second through a torch DataLoader with 1 and 2 workers, from shards (raw npy,
mp4, jpg, png video; cached latents) and from the dataset readers (MultiCamVideo, RealEstate10K in CameraCtrl's
layout, MV-TAP's Kubric), all on synthetic fixtures written here in each exact layout. Also the bytes one clip takes
in each shard format, including the issue's 2-view, 81-frame 480x832 clip.

Frames are a panning, zooming view of a procedural texture (smooth colour fields, edges and fine noise), so codecs
see motion and detail; real footage compresses differently, so read the sizes as indicative. Prints markdown tables;
run ``python benchmarks/data_throughput.py [--clips 8] [--workers 1 2] [--only shards trainer latents multicam re10k
kubric]``. The ``trainer`` rows time the training loop's own reader (``TrainBatches``: ``data.workers`` 0, 1, 2).
The cached-latents row reads shards of what ``mvtrack encode`` writes for the same clip (Wan2.1's latent and text
shapes, float16), without the VAE: training from them skips the VAE's encoding, which is not timed here.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader

from mvtrack.data import (
    MultiCamVideo,
    MultiViewClip,
    MultiViewKubric,
    RealEstate10K,
    ShardClips,
    ShardDataset,
    collate,
    encode_clip,
    write_kubric_sequence,
    write_multicam_scene,
    write_re10k_layout,
    write_shards,
)
from mvtrack.data.latents import LatentClip, collate_latents
from mvtrack.geometry import look_at, make_intrinsics


def texture(size: int, seed: int) -> np.ndarray:
    """uint8 (size, size, 3): smooth colour fields, a few sharp-edged boxes and fine noise."""
    rng = np.random.default_rng(seed)
    smooth = cv2.resize(rng.random((size // 64, size // 64, 3)).astype(np.float32), (size, size),
                        interpolation=cv2.INTER_CUBIC)
    image = 0.2 + 0.6 * smooth
    for _ in range(size // 16):
        x, y, w, h = rng.integers(0, size, 4) // np.array([1, 1, 6, 6])
        image[y : y + h, x : x + w] = rng.random(3)
    image += rng.normal(0, 0.03, image.shape)
    return (image.clip(0, 1) * 255).astype(np.uint8)


def pan_frames(views: int, frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """uint8 (V, T, H, W, 3): each view pans and zooms slowly across its own part of one texture."""
    tex = texture(2 * max(height, width) + 64 * views, seed)
    out = np.empty((views, frames, height, width, 3), np.uint8)
    for v in range(views):
        for t in range(frames):
            zoom = 1.0 + 0.002 * t
            x0, y0 = 32 * v + 2 * t, 16 * v + t
            h, w = int(height * zoom), int(width * zoom)
            out[v, t] = cv2.resize(tex[y0 : y0 + h, x0 : x0 + w], (width, height), interpolation=cv2.INTER_AREA)
    return out


def cameras(views: int, frames: int) -> torch.Tensor:
    """(V, T, 4, 4) OpenCV w2c on a slow orbit (the pixels do not need to match them to time the loading)."""
    angle = 0.3 * torch.arange(views, dtype=torch.float64)[:, None] + 0.01 * torch.arange(frames)[None]
    eye = torch.stack([4 * angle.cos(), 4 * angle.sin(), 1.5 + 0 * angle], -1)
    return torch.linalg.inv(look_at(eye, torch.zeros(views, frames, 3, dtype=torch.float64)))


def clip_of(frames: np.ndarray, num_tracks: int = 256) -> MultiViewClip:
    V, T, H, W, _ = frames.shape
    g = torch.Generator().manual_seed(0)
    return MultiViewClip(
        video=torch.from_numpy(frames).permute(0, 1, 4, 2, 3).float() / 255, w2c=cameras(V, T).float(),
        K=make_intrinsics(W, W, (W - 1) / 2, (H - 1) / 2).expand(V, T, 3, 3).clone(),
        tracks=torch.rand(V, T, num_tracks, 2, generator=g) * torch.tensor([W, H]),
        visible=torch.rand(V, T, num_tracks, generator=g) > 0.3)


def _collate_any(clips: list) -> MultiViewClip | LatentClip:
    return collate_latents(clips) if isinstance(clips[0], LatentClip) else collate(clips)


def rate(dataset, workers: int, clips: int) -> float:
    """Steady-state clips per second: the second epoch of ``clips`` through persistent workers (the first warms the
    page cache and starts the workers)."""
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=_collate_any,
                        persistent_workers=workers > 0)
    for _ in loader:
        pass
    start = time.perf_counter()
    count = sum(batch.w2c.shape[0] for batch in loader)
    assert count == clips, (count, clips)
    return count / (time.perf_counter() - start)


def bench_shards(root: Path, args) -> list[tuple]:
    V, T, H, W = args.shard_shape
    frames = pan_frames(V, T, H, W)
    clip = clip_of(frames)
    rows = []
    for fmt in ("npy", "mp4", "jpg", "png"):
        out = root / f"shards-{fmt}"
        write_shards([clip] * args.clips, out, clips_per_shard=1, video_format=fmt)  # one shard per clip: any split
        mb = sum(p.stat().st_size for p in out.glob("*.tar")) / args.clips / 2**20
        for workers in args.workers:
            r = rate(ShardDataset(out, shuffle=False), workers, args.clips)
            rows.append((f"shards, {fmt} video", f"{V}x{T}x{H}x{W}, 256 tracks", workers, r, f"{mb:.2f}"))
    return rows


def train_rate(source: Path, workers: int, clips: int, world: int = 2) -> float:
    """Steady-state clips per second of the trainer's own reader (``TrainBatches``) on rank 0 of ``world``: each rank
    reads only its share, so ``clips`` positions of the stream cost this rank ``clips / world`` reads. Timed over the
    second ``clips // world`` micro-batches of 1 clip (the first start the workers)."""
    from mvtrack.training import TrainConfig
    from mvtrack.training.data import TrainBatches

    first = ShardClips(source)[0]
    V, T, (H, W) = first.num_views, first.num_frames, first.size
    data = TrainConfig(data={"source": str(source), "views": V, "frames": T, "height": H, "width": W,
                             "workers": workers, "shuffle": False}).data
    batches = TrainBatches(data, batch_size=1, grad_accum=1, rank=0, world=world)
    steps = clips // world
    for step in range(steps):
        batches.get(step)
    start = time.perf_counter()
    for step in range(steps, 2 * steps):
        batches.get(step)
    elapsed = time.perf_counter() - start
    batches.close()
    return steps / elapsed


def bench_trainer(root: Path, args) -> list[tuple]:
    """The trainer's reader on mp4 shards (``data.workers`` 0 = in the training process)."""
    V, T, H, W = args.shard_shape
    out = root / "shards-mp4"
    if not out.is_dir():
        write_shards([clip_of(pan_frames(V, T, H, W))] * args.clips, out, clips_per_shard=1, video_format="mp4")
    mb = sum(p.stat().st_size for p in out.glob("*.tar")) / args.clips / 2**20
    return [(f"trainer (`data.workers`), rank 0 of 2, mp4 video", f"{V}x{T}x{H}x{W}, 256 tracks", workers,
             train_rate(out, workers, args.clips), f"{mb:.2f}") for workers in [0, *args.workers]]


def latent_clip_of(clip: MultiViewClip, caption_tokens: int = 32, text_dim: int = 4096) -> LatentClip:
    """What ``mvtrack encode`` writes for ``clip`` with Wan2.1's VAE (16 channels, 4x temporal and 8x spatial
    compression) and UMT5 (4096-wide token embeddings of the caption and of the empty prompt), in float16, its
    default: random values of those shapes (reading time depends on the bytes, not on the values)."""
    V, T, (H, W) = clip.num_views, clip.num_frames, clip.size
    g = torch.Generator().manual_seed(0)
    return LatentClip(latents=torch.randn(V, (T - 1) // 4 + 1, 16, H // 8, W // 8, generator=g).half(), w2c=clip.w2c,
                      K=clip.K, tracks=clip.tracks, visible=clip.visible,
                      text=torch.randn(caption_tokens, text_dim, generator=g).half(),
                      text_empty=torch.randn(1, text_dim, generator=g).half(),
                      meta={"size": [H, W], "latents": {"vae": "Wan2.1 (shapes only)", "temporal": 4, "spatial": 8}})


def bench_latents(root: Path, args) -> list[tuple]:
    V, T, H, W = args.shard_shape
    latent = latent_clip_of(clip_of(pan_frames(V, T, H, W)))
    out = root / "shards-latents"
    write_shards([latent] * args.clips, out, clips_per_shard=1)
    mb = sum(p.stat().st_size for p in out.glob("*.tar")) / args.clips / 2**20
    F, C, h, w = latent.latents.shape[1:]
    shape = (f"{V}x{T}x{H}x{W} as {V}x{F}x{C}x{h}x{w} latents + {latent.text.shape[0]}x{latent.text.shape[1]} text, "
             "256 tracks")
    return [("shards, cached latents (mvtrack encode, float16)", shape, workers,
             rate(ShardDataset(out, shuffle=False), workers, args.clips), f"{mb:.2f}") for workers in args.workers]


def bench_multicam(root: Path, args) -> list[tuple]:
    cams, T, S = 3, args.multicam_frames, args.multicam_source
    write_multicam_scene(root / "MultiCamVideo" / "train" / "f24_aperture5" / "scene1", pan_frames(cams, T, S, S),
                         cameras(cams, T))
    H, W = args.multicam_size
    rows = []
    for workers in args.workers:
        ds = MultiCamVideo(root / "MultiCamVideo", size=(H, W), num_frames=T, views=2, samples_per_scene=args.clips)
        rows.append(("MultiCamVideo reader", f"2x{T}x{H}x{W} from {S}x{S} mp4", workers, rate(ds, workers, args.clips),
                     "-"))
    return rows


def bench_re10k(root: Path, args) -> list[tuple]:
    T, (H0, W0) = 64, args.re10k_source
    frames = pan_frames(1, T, H0, W0)[0]
    w2c = cameras(1, T)[0]
    K = make_intrinsics(W0 * 0.9, W0 * 0.9, (W0 - 1) / 2, (H0 - 1) / 2).double().expand(T, 3, 3)
    write_re10k_layout(root / "RealEstate10K", [{"name": f"clip{i:03d}", "frames": frames, "w2c": w2c, "K": K}
                                                for i in range(args.clips)])
    H, W = args.re10k_size
    rows = []
    for workers in args.workers:
        ds = RealEstate10K(root / "RealEstate10K", size=(H, W), num_frames=16, stride=4)
        rows.append(("RealEstate10K reader", f"1x16x{H}x{W} (stride 4) from {H0}x{W0} mp4", workers,
                     rate(ds, workers, args.clips), "-"))
    return rows


def bench_kubric(root: Path, args) -> list[tuple]:
    V, T, S, N = 4, 24, args.kubric_source, 2048
    clip = clip_of(pan_frames(V, T, S, S), num_tracks=N)
    for i in range(args.clips):
        write_kubric_sequence(root / "Kubric", f"seq{i:03d}", pan_frames(V, T, S, S, seed=i), clip.w2c, clip.K,
                              clip.tracks, clip.visible)
    rows = []
    for workers in args.workers:
        ds = MultiViewKubric(root / "Kubric", size=S, num_frames=T, num_tracks=256)
        rows.append(("Kubric (MV-TAP) reader", f"{V}x{T}x{S}x{S} png, 256 of {N} tracks", workers,
                     rate(ds, workers, args.clips), "-"))
    return rows


def sizes_of_one_clip(shape) -> list[tuple]:
    """Bytes of one clip's video members in each format (no tar headers)."""
    clip = clip_of(pan_frames(*shape), num_tracks=1)
    rows = []
    for fmt in ("npy", "mp4", "jpg", "png"):
        start = time.perf_counter()
        members = encode_clip(clip, video_format=fmt)
        seconds = time.perf_counter() - start
        size = sum(len(v) for k, v in members.items() if k.startswith("video"))
        rows.append((fmt, size / 2**20, seconds))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=8, help="clips per timed epoch")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+",
                        default=["shards", "trainer", "latents", "multicam", "re10k", "kubric", "sizes"])
    parser.add_argument("--shard-shape", type=int, nargs=4, default=[2, 21, 480, 832], metavar=("V", "T", "H", "W"))
    parser.add_argument("--multicam-source", type=int, default=1280, help="square source size (the dataset: 1280)")
    parser.add_argument("--multicam-frames", type=int, default=81)
    parser.add_argument("--multicam-size", type=int, nargs=2, default=[480, 832])
    parser.add_argument("--re10k-source", type=int, nargs=2, default=[360, 640])
    parser.add_argument("--re10k-size", type=int, nargs=2, default=[256, 384])
    parser.add_argument("--kubric-source", type=int, default=256)
    parser.add_argument("--size-shape", type=int, nargs=4, default=[2, 81, 480, 832], metavar=("V", "T", "H", "W"))
    parser.add_argument("--workdir", type=Path, default=None, help="where fixtures go (default: a temporary folder)")
    args = parser.parse_args()
    print(f"{datetime.date.today()}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; CPU only, synthetic fixtures")
    benches = [(name, bench) for name, bench in (("shards", bench_shards), ("trainer", bench_trainer),
                                                 ("latents", bench_latents),
                                                 ("multicam", bench_multicam),
                                                 ("re10k", bench_re10k), ("kubric", bench_kubric)) if name in args.only]
    if benches:
        print("\n| source | clip (V x T x H x W) | workers | clips/s | clips/s per worker | MiB per clip on disk |")
        print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for _, bench in benches:
            for source, shape, workers, r, mb in bench(Path(tmp), args):
                per = f"{r / workers:.2f}" if workers else "-"
                print(f"| {source} | {shape} | {workers} | {r:.2f} | {per} | {mb} |", flush=True)
    if "sizes" in args.only:
        V, T, H, W = args.size_shape
        print(f"\n| video format | MiB for one {V}-view, {T}-frame {H}x{W} clip | encode seconds |")
        print("|---|---|---|")
        for fmt, mb, seconds in sizes_of_one_clip(args.size_shape):
            print(f"| {fmt} | {mb:.1f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
