"""``mvtrack synth``: engine clips written as WebDataset tar shards."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from mvtrack.data import ShardWriter
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


def write_synthetic_shards(config: SynthConfig, out_dir: str | Path, num: int, seed: int = 0, split: str = "train",
                           clips_per_shard: int = 64, batch: int = 1, device: str = "cpu", video_format: str = "png",
                           quality: int | None = None, progress: Callable[[int], None] | None = None) -> list[Path]:
    """Render clips ``clip_seed(seed, i, split)`` for i < ``num``, ``batch`` at a time on ``device``, into shards of
    ``clips_per_shard`` (video stored as ``video_format``), and ``config.json``; each clip's ``meta`` gets its
    ``index`` and ``split``. ``progress(n)`` after each batch. Returns the shard paths."""
    seeds = [clip_seed(seed, i, split) for i in range(num)]
    writer = ShardWriter(out_dir, clips_per_shard=clips_per_shard, video_format=video_format, quality=quality)
    with writer:
        for i in range(0, num, batch):
            clips = render_clips(config, seeds[i : i + batch], device=device)
            for j, clip in enumerate(clips.unbatch()):
                clip.meta.update(index=i + j, split=split)
                writer.write(clip.to("cpu"))
            if progress is not None:
                progress(len(seeds[i : i + batch]))
    (Path(out_dir) / "config.json").write_text(
        json.dumps({"seed": seed, "split": split, "num": num, **config.to_dict()}, indent=2))
    return writer.written
