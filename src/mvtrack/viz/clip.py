"""Everything a person looks at for one clip: a grid video of all views with tracks, and a camera plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mvtrack.data.clip import MultiViewClip

from .cameras import plot_cameras
from .tracks import draw_tracks, tile_views, track_colors
from .video import to_uint8_frames, write_gif, write_mp4


def visualize_clip(clip: MultiViewClip, out_dir: str | Path, name: str, fps: int = 8, scale: int = 2,
                   max_tracks: int = 128) -> dict[str, Path]:
    """Write ``NAME.mp4`` and ``NAME.gif`` (all views tiled, tracks drawn, hidden while occluded) and
    ``NAME_cameras.png`` (trajectories as frusta over the 3D track points) into ``out_dir``."""
    if clip.batched:
        raise ValueError("visualize_clip: expected an unbatched clip")
    out_dir = Path(out_dir)
    H, W = clip.size
    n = min(clip.num_tracks, max_tracks)
    colors = track_colors(n)
    views = [
        draw_tracks(to_uint8_frames(clip.video[v]), clip.tracks[v, :, :n], clip.visible[v, :, :n], colors, scale=scale)
        for v in range(clip.num_views)
    ]
    grid = tile_views(views)
    meta = clip.meta if isinstance(clip.meta, dict) else {}
    title = ", ".join(f"{k}: {meta[k]}" for k in ("baseline", "dynamic") if k in meta)
    points = clip.tracks3d[0, :n] if clip.tracks3d is not None else None
    if points is not None:
        points = points[points.norm(dim=-1) < 15]  # the sky dome's points would dwarf the scene
    return {
        "mp4": write_mp4(out_dir / f"{name}.mp4", grid, fps),
        "gif": write_gif(out_dir / f"{name}.gif", grid, fps),
        "cameras": plot_cameras(out_dir / f"{name}_cameras.png", clip.w2c, clip.K, H, W, points, title=title),
    }


@dataclass
class DrawnShards:
    """What ``visualize_shards`` drew: per clip the paths ``visualize_clip`` wrote, the read statistics (corrupt
    shards, skipped samples) and the warnings raised while reading."""

    clips: list
    stats: object
    warnings: list = field(default_factory=list)


def visualize_shards(source: str | Path, out_dir: str | Path, max_clips: int = 4, fps: int = 8, scale: int = 2,
                     max_tracks: int = 128) -> DrawnShards:
    """``visualize_clip`` on the first ``max_clips`` readable clips of a shard directory, file or glob, each named
    ``clip_<index>`` by its ``meta["index"]``; corrupt samples are skipped and counted (``DrawnShards.stats``)."""
    import warnings

    from mvtrack.data import ReadStats, iter_shard, list_shards

    paths = list_shards(source)
    stats, drawn = ReadStats(), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for path in paths:
            for clip in iter_shard(path, stats):
                index = clip.meta.get("index", len(drawn)) if isinstance(clip.meta, dict) else len(drawn)
                drawn.append(visualize_clip(clip, out_dir, f"clip_{index:04d}", fps=fps, scale=scale,
                                            max_tracks=max_tracks))
                if len(drawn) >= max_clips:
                    return DrawnShards(drawn, stats, [str(w.message) for w in caught])
    return DrawnShards(drawn, stats, [str(w.message) for w in caught])
