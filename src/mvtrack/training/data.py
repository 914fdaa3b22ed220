"""Training batches as a pure function of (step, micro-step, rank): exact resume needs nothing but the step."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from mvtrack.data import MultiViewClip, ReadStats, collate, iter_shard, list_shards
from mvtrack.data.latents import LatentClip, collate_latents, crop_latents
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

from .config import DataConfig


class TrainBatches:
    """Clip ``k`` of the stream goes to micro-batch ``k // (world * b)``, rank ``(k // b) % world``.

    Synthetic data renders clip k from ``clip_seed(seed, k, "train")`` on ``device``; shard data reads the
    shards in sorted order, cycling, so resuming at step s skips the clips consumed before it. Shards of cached latents
    (``mvtrack encode``) give ``LatentClip`` batches (``latents`` True; ``text`` True when they hold embeddings).

    ``min_views``: fewer views than ``data.views`` are accepted down to this many (1: monocular clips, which CVD's
    pseudo-views turn into ``data.views`` views).
    """

    def __init__(self, data: DataConfig, batch_size: int, grad_accum: int, rank: int = 0, world: int = 1, device="cpu",
                 min_views: int | None = None):
        self.data, self.batch_size, self.grad_accum = data, batch_size, grad_accum
        self.rank, self.world, self.device = rank, world, torch.device(device)
        self.min_views = data.views if min_views is None else min_views
        self.synthetic = data.source == "synthetic"
        self.latents = self.text = False
        if self.synthetic:
            self.synth = SynthConfig(
                views=data.views,
                frames=data.frames,
                height=data.height,
                width=data.width,
                num_tracks=data.num_tracks,
                query_view=data.query_view,
                baseline=data.baseline,
                layouts=tuple(data.layouts),
                photo_prob=data.photo_prob,
            )
        else:
            self.shards = list_shards(data.source)
            self.stats = ReadStats()  # skipped samples and corrupt shards, reported at the end of training
            self._stream: Iterator[MultiViewClip] | None = None
            self._position = 0  # next global clip index the stream yields
            first = self.peek()
            self.latents = isinstance(first, LatentClip)
            self.text = self.latents and first.text is not None and first.text_empty is not None

    def peek(self) -> MultiViewClip | LatentClip:
        """The first readable clip of the shards (what kind they hold)."""
        for path in self.shards:
            for clip in iter_shard(path, ReadStats()):
                return clip
        raise ValueError(f"data.source: the shards at {self.data.source} hold no readable clips")

    def clip_indices(self, step: int, micro: int) -> list[int]:
        first = ((step * self.grad_accum + micro) * self.world + self.rank) * self.batch_size
        return list(range(first, first + self.batch_size))

    def get(self, step: int, micro: int = 0) -> MultiViewClip:
        """The micro-batch of this rank at (step, micro): video (b, V, F, 3, H, W) etc. on ``device``."""
        ids = self.clip_indices(step, micro)
        if self.synthetic:
            clip = render_clips(self.synth, [clip_seed(self.data.seed, k, "train") for k in ids], self.device)
        else:
            clips = [self._shard_clip(k) for k in ids]
            clip = collate_latents(clips) if self.latents else collate(clips)
        return self._crop(clip).to(self.device)

    def _shard_clip(self, index: int) -> MultiViewClip:
        if self._stream is None or index < self._position:
            self._stream, self._position = self._cycle(), 0
        while True:
            clip = next(self._stream)
            self._position += 1
            if self._position - 1 == index:
                return clip

    def _cycle(self) -> Iterator[MultiViewClip]:
        while True:
            count = 0
            for path in self.shards:
                for clip in iter_shard(path, self.stats):
                    count += 1
                    yield clip
            if count == 0:
                raise ValueError(f"data.source: the shards at {self.data.source} hold no readable clips")

    def _crop(self, clip: MultiViewClip | LatentClip) -> MultiViewClip | LatentClip:
        V, F, (H, W) = clip.num_views, clip.num_frames, clip.size
        d = self.data
        if V < self.min_views or F < d.frames or (H, W) != (d.height, d.width):
            views = f">= {d.views}" if self.min_views == d.views else f"{self.min_views} to {d.views}"
            raise ValueError(
                f"data: expected clips with {views} views, >= {d.frames} frames and size {d.height}x{d.width}, "
                f"got {V} views, {F} frames, {H}x{W} from {d.source}"
            )
        if isinstance(clip, LatentClip):
            meta = clip.meta[0] if isinstance(clip.meta, list) else clip.meta
            return crop_latents(clip, d.views, d.frames, meta["latents"]["temporal"])
        return MultiViewClip(
            video=clip.video[:, : d.views, : d.frames],
            w2c=clip.w2c[:, : d.views, : d.frames],
            K=clip.K[:, : d.views, : d.frames],
            tracks=clip.tracks[:, : d.views, : d.frames],
            visible=clip.visible[:, : d.views, : d.frames],
            depth=None if clip.depth is None else clip.depth[:, : d.views, : d.frames],
            tracks3d=None if clip.tracks3d is None else clip.tracks3d[:, : d.frames],
            meta=clip.meta,
        )
