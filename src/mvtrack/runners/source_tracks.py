"""``mvtrack tracks``: the dense 3D tracks of a source video (Track2View's input), in its camera file's world, with
pictures a person checks them by: the tracks over four frames, and the source's depth."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvtrack.data import RealTracks, load_source
from mvtrack.data.source import Source
from mvtrack.data.source_geometry import SourceGeometry
from mvtrack.defaults import FOV_DEGREES

from .generate import prepare_source


@dataclass
class SourceTracks:
    """``tracks`` of ``source`` (from ``source_tracks``), its ``geometry``, and ``notes`` for the user."""

    source: Source
    tracks: RealTracks
    geometry: SourceGeometry | None
    notes: list

    def save(self, path: str | Path, shown_tracks: int = 600) -> list[Path]:
        """Write the tracks as ``path`` (.npz, what ``generate --tracks3d`` reads), ``NAME.png`` (about
        ``shown_tracks`` tracks over 4 frames, coloured by the frame they were lifted from) and ``NAME_depth.png``
        (those frames over their depth); returns the three paths."""
        import imageio.v3 as iio

        from mvtrack.viz import depth_image, draw_tracks, tile_views, to_uint8_frames, upscale_frames

        path = Path(path)
        self.tracks.save(path)
        frames = to_uint8_frames(self.source.frames)
        T, (H, W) = self.source.num_frames, self.source.size
        shown = np.unique(np.linspace(0, T - 1, 4).round().astype(int))
        scale = max(1, 256 // max(H, W))
        tracks = self.tracks
        step = max(1, tracks.tracks.shape[1] // shown_tracks)
        N = tracks.tracks[:, ::step].shape[1]
        colors = np.tile([[40, 220, 40]], (N, 1)) if tracks.origin is None else origin_colors(tracks.origin[::step], T)
        drawn = draw_tracks(frames, tracks.tracks[:, ::step], tracks.visible[:, ::step], colors.astype(np.uint8),
                            scale=scale)
        overlay = path.with_suffix(".png")
        iio.imwrite(overlay, tile_views([drawn[t][None] for t in shown], columns=len(shown))[0])
        depth = path.with_name(path.stem + "_depth.png")
        g = self.geometry
        pictures = depth_image(g.depth, g.supported, g.moving)
        h = max(pictures.shape[1], H * scale)
        rows = [upscale_frames(frames[shown], scale), upscale_frames(pictures[shown], max(1, h // pictures.shape[1]))]
        iio.imwrite(depth, np.concatenate([tile_views([r[k][None] for k in range(len(shown))], columns=len(shown))[0]
                                           for r in rows], 0))
        return [path, overlay, depth]


def origin_colors(origin, frames: int) -> np.ndarray:
    """(N, 3) a colour per track from its origin frame (matplotlib's viridis: early frames dark, late ones yellow)."""
    import matplotlib

    return (matplotlib.colormaps["viridis"](origin.numpy() / max(frames - 1, 1))[:, :3] * 255).round()


def source_tracks(video: str | Path, size: tuple[int, int], frames: int | None = None, cameras=None, depth=None,
                  depth_model=None, fov: float = FOV_DEGREES) -> SourceTracks:
    """The dense 3D tracks of ``video`` at ``size`` (H, W; centre-cropped to its aspect ratio): every static pixel
    whose stereo depth its neighbour frames confirm (or every pixel of a ``depth`` file), in the camera file's world
    (structure from motion when there is none; ``fov``: its first guess). ``depth_model``: a ``LearnedDepth``
    completing the stereo depth. Raises ``ValueError`` when no track can be placed in 3D."""
    source = load_source(video, size, frames, cameras, depth, fov)
    inputs = prepare_source(source, depth_model=depth_model, scale_scene=False, min_tracks=1)
    if inputs.tracks is None:
        raise ValueError(f"{video}: no 3D tracks could be made ({'; '.join(inputs.notes)})")
    return SourceTracks(inputs.source, inputs.tracks, inputs.geometry, inputs.notes)
