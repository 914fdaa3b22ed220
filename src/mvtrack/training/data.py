"""Training batches as a pure function of (step, micro-step, rank): exact resume needs nothing but the step."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from mvtrack.data import MultiViewClip, ShardClips, ShardError, collate
from mvtrack.data.latents import LatentClip, collate_latents, crop_latents
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

from .config import DataConfig


class TrainBatches:
    """Clip ``k`` of the stream goes to micro-batch ``k // (world * b)``, rank ``(k // b) % world``.

    Synthetic data renders clip k from ``clip_seed(seed, k, "train")`` on ``device``. Shard data: position ``k`` of
    the stream is clip ``order(k // N)[k % N]`` of the N clips of the shards (``ShardClips``: sorted shards, an index
    of their tar headers), where ``order(e)`` is a permutation seeded by ``data.seed`` and the pass ``e`` when
    ``data.shuffle``, else the identity. Each rank reads only the clips of its own micro-batches, decoded by
    ``data.workers`` DataLoader worker processes ahead of the step that needs them; resuming at step s starts the
    loader there, with nothing read before it. A clip that does not decode is replaced by the next one that does
    (a warning and a count in ``stats``). Shards of cached latents (``mvtrack encode``) give ``LatentClip`` batches
    (``latents`` True; ``text`` True when they hold embeddings).

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
            self.clips = ShardClips(data.source)
            self.stats = self.clips.stats  # skipped samples and corrupt shards, reported at the end of training
            if len(self.clips) == 0:
                raise ValueError(f"data.source: the shards at {data.source} hold no readable clips")
            self._loader: Iterator | None = None
            self._next: tuple[int, int] | None = None  # the (step, micro) the loader yields next
            self._orders: dict[int, list[int]] = {}
            first = self.peek()
            _Collate(data, self.min_views)([(first, [])])  # a clip of the wrong size is refused here, in one line
            self.latents = isinstance(first, LatentClip)
            self.text = self.latents and first.text is not None and first.text_empty is not None

    def peek(self) -> MultiViewClip | LatentClip:
        """The first readable clip of the shards (what kind they hold)."""
        clip, _ = _read_or_next(self.clips, 0)
        return clip

    def clip_indices(self, step: int, micro: int) -> list[int]:
        """Stream positions of this rank's micro-batch at (step, micro)."""
        first = ((step * self.grad_accum + micro) * self.world + self.rank) * self.batch_size
        return list(range(first, first + self.batch_size))

    def shard_indices(self, step: int, micro: int) -> list[int]:
        """Indices into ``clips`` (``ShardClips``) of this rank's micro-batch at (step, micro)."""
        n = len(self.clips)
        return [self._order(k // n)[k % n] for k in self.clip_indices(step, micro)]

    def _order(self, epoch: int) -> list[int] | range:
        if not self.data.shuffle:
            return range(len(self.clips))
        if epoch not in self._orders:
            g = torch.Generator().manual_seed(self.data.seed * 1_000_003 + epoch)
            self._orders = {epoch: torch.randperm(len(self.clips), generator=g).tolist()}  # one pass kept
        return self._orders[epoch]

    def get(self, step: int, micro: int = 0) -> MultiViewClip | LatentClip:
        """The micro-batch of this rank at (step, micro): video (b, V, F, 3, H, W) etc. on ``device``."""
        if self.synthetic:
            ids = self.clip_indices(step, micro)
            clip = render_clips(self.synth, [clip_seed(self.data.seed, k, "train") for k in ids], self.device)
            return crop_clip(clip, self.data, self.min_views).to(self.device)
        if self._loader is None or self._next != (step, micro):
            self.close()
            self._loader = iter(DataLoader(
                _Clips(self.clips), batch_sampler=_Steps(self, step, micro), num_workers=self.data.workers,
                collate_fn=_Collate(self.data, self.min_views),
            ))
        clip, skipped = next(self._loader)
        for message in skipped:
            warnings.warn(message, stacklevel=2)
        self.stats.skipped_samples += len(skipped)
        self._next = (step, micro + 1) if micro + 1 < self.grad_accum else (step + 1, 0)
        return clip.to(self.device)

    def close(self) -> None:
        """Stop the loader's worker processes (a later ``get`` starts new ones)."""
        self._loader, self._next = None, None


class _Steps:
    """Batch sampler: this rank's shard indices for (step, micro), (step, micro + 1), ... from a start, endlessly."""

    def __init__(self, batches: TrainBatches, step: int, micro: int):
        self.batches, self.step, self.micro = batches, step, micro

    def __iter__(self) -> Iterator[list[int]]:
        step, micro = self.step, self.micro
        while True:
            yield self.batches.shard_indices(step, micro)
            step, micro = (step, micro + 1) if micro + 1 < self.batches.grad_accum else (step + 1, 0)


class _Clips(Dataset):
    """Clip ``i`` of the shards, with the warnings of any clip that did not decode and was replaced by the next."""

    def __init__(self, clips: ShardClips):
        self.clips = clips

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[MultiViewClip | LatentClip, list[str]]:
        return _read_or_next(self.clips, index)


class _Collate:
    """A micro-batch from ``_Clips`` items, cropped to the training shape (in the worker process that read it)."""

    def __init__(self, data: DataConfig, min_views: int):
        self.data, self.min_views = data, min_views

    def __call__(self, items: list[tuple[MultiViewClip | LatentClip, list[str]]]):
        clips = [clip for clip, _ in items]
        batch = collate_latents(clips) if isinstance(clips[0], LatentClip) else collate(clips)
        return crop_clip(batch, self.data, self.min_views), [m for _, skipped in items for m in skipped]


def _read_or_next(clips: ShardClips, index: int) -> tuple[MultiViewClip | LatentClip, list[str]]:
    """Clip ``index``, or the first clip after it (cycling) that decodes, with a message per clip passed over."""
    skipped = []
    for k in range(len(clips)):
        try:
            return clips.read((index + k) % len(clips)), skipped
        except ShardError as e:
            skipped.append(f"skipping corrupt sample: {e}")
    raise ValueError(f"data.source: the shards at {clips.source} hold no readable clips")


def crop_clip(clip: MultiViewClip | LatentClip, data: DataConfig, min_views: int) -> MultiViewClip | LatentClip:
    """The first ``data.views`` views and ``data.frames`` frames of a batched clip; ``ValueError`` in one line when
    it has fewer views than ``min_views``, fewer frames or another size."""
    V, F, (H, W) = clip.num_views, clip.num_frames, clip.size
    d = data
    if V < min_views or F < d.frames or (H, W) != (d.height, d.width):
        views = f">= {d.views}" if min_views == d.views else f"{min_views} to {d.views}"
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
