"""Clips rendered on the fly by the synthetic engine, as a torch dataset."""

from __future__ import annotations

from collections.abc import Iterator

from torch.utils.data import IterableDataset

from mvtrack.data.clip import MultiViewClip
from mvtrack.data.datasets import worker_split

from .config import SynthConfig
from .engine import clip_seed, render_clips


class SyntheticDataset(IterableDataset):
    """Clip ``i`` is rendered from ``clip_seed(seed, i, split)``, whichever worker or rank renders it.

    Args:
        config: engine configuration.
        seed: base seed; ``split`` picks a disjoint seed stream (``test`` is the held-out one).
        num_clips: clips per epoch; None streams for ever.
        render_batch: clips rendered together (1 is fastest on CPU; use tens on a GPU).
        device: where to render; clips are yielded on that device.
    """

    def __init__(self, config: SynthConfig, seed: int = 0, split: str = "train", num_clips: int | None = None,
                 render_batch: int = 1, device="cpu", start: int = 0):
        clip_seed(seed, 0, split)  # validates the split name
        self.config, self.seed, self.split = config, seed, split
        self.num_clips, self.render_batch, self.device, self.start = num_clips, render_batch, device, start

    def __iter__(self) -> Iterator[MultiViewClip]:
        index, count = worker_split()
        i = self.start + index
        while self.num_clips is None or i < self.start + self.num_clips:
            ids = []
            while len(ids) < self.render_batch and (self.num_clips is None or i < self.start + self.num_clips):
                ids.append(i)
                i += count
            batch = render_clips(self.config, [clip_seed(self.seed, j, self.split) for j in ids], self.device)
            for j, clip in zip(ids, batch.unbatch()):
                clip.meta["index"] = j
                yield clip
