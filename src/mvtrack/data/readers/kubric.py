"""Multi-view Kubric in MV-TAP's layout as multi-view clips with multi-view tracks and visibility.

Layout (MV-TAP ``data/kubric_train.py`` and ``data/kubric_eval.py``; cvlab-kaist/MV-TAP, read at commit f5c2e70)::

    <root>/frames/<seq>/<view>/rgba_00000.png ...       one folder per view, names sorted as MV-TAP sorts them
    <root>/stacked_tracks/<seq>/tracks.npz               (or <root>/<part>/frames/..., several parts)

``tracks.npz`` arrays: ``coords (V, N, T, 2)`` pixels, ``occluded (V, N, T)``, ``is_bkgd`` (``[0, :, 0]`` gives a
track's flag), ``cam_rot``/``cam_trans`` (a Blender/OpenGL world-to-camera, ``(V, T, 3, 3)``/``(V, T, 3)`` or one per
view), ``intrinsics (V, T, 3, 3)`` pixels. MV-TAP turns the extrinsics into OpenCV by negating rows 1-2
(``geometry.opengl_to_opencv`` on the camera-to-world here) and scales coordinates and intrinsics by the resize
factor alone, i.e. measures pixels from the image corner (Kubric / TAP-Vid: pixel centres at i + 0.5); both are
moved to mvtrack's centre convention (``pixel_origin="corner"``; ``"center"`` if your files already are), then
follow the crop and resize. A track is visible where it is not occluded and inside the output frame.

MV-TAP's own ``tracks.npy`` is a pickled dict; mvtrack never unpickles, so such a file is refused with the way out:
save its arrays once as ``tracks.npz`` where it was made.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from mvtrack.geometry import c2w_to_w2c, check_extrinsics, check_intrinsics, invert_rigid, opengl_to_opencv, w2c_to_c2w
from mvtrack.geometry.crop import (corner_to_center, corner_to_center_intrinsics, crop_intrinsics, crop_points,
                                   inside_image)

from ..clip import MultiViewClip
from .base import ReaderDataset, check_sampling, check_size, crop_box, crop_resize, frame_indices, read_image

POINTS = ("all", "dynamic")
PIXEL_ORIGINS = ("corner", "center")


def find_sequences(root: str | Path) -> list[tuple[Path, str]]:
    """``(part, sequence)`` pairs under ``root`` (a part holds ``frames/``; ``root`` or its sub-folders), sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"Kubric root {root}: not a directory")
    parts = [root] if (root / "frames").is_dir() else sorted(p for p in root.iterdir() if (p / "frames").is_dir())
    return [(part, seq) for part in parts for seq in sorted(os.listdir(part / "frames"))
            if (part / "frames" / seq).is_dir()]


def load_tracks_file(folder: Path) -> dict[str, np.ndarray]:
    """The arrays of ``folder/tracks.npz`` (never unpickled); a pickled ``tracks.npy`` is refused with its fix."""
    npz, npy = folder / "tracks.npz", folder / "tracks.npy"
    if not npz.is_file():
        if npy.is_file():
            raise ValueError(f"{npy}: MV-TAP's tracks.npy is a pickled dict and mvtrack never unpickles files; save "
                             "its arrays once as tracks.npz (np.savez) where the file was made")
        raise FileNotFoundError(f"Kubric tracks {npz}: not found")
    try:
        with np.load(npz, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:  # zip and numpy errors; the caller needs the file and the reason
        raise ValueError(f"{npz}: not a readable .npz of arrays ({type(e).__name__}: {e})") from None


def _per_frame(array: np.ndarray, name: str, V: int, T: int, tail: tuple[int, ...], path: Path) -> np.ndarray:
    """``array`` as ``(V, T, *tail)``, accepting one value per view ``(V, *tail)``."""
    if array.shape == (V, *tail):
        array = np.repeat(array[:, None], T, axis=1)
    if array.shape != (V, T, *tail) or array.dtype.kind not in "fiu":
        raise ValueError(f"{path}: {name}: expected numbers of shape {(V, T, *tail)} or {(V, *tail)}, got "
                         f"{array.dtype} {array.shape}")
    return array


def check_tracks(arrays: dict[str, np.ndarray], path: Path) -> tuple[int, int, int]:
    """``(V, N, T)`` of a tracks file, after checking that every array MV-TAP reads is there with its shape."""
    for key in ("coords", "occluded", "cam_rot", "cam_trans", "intrinsics"):
        if key not in arrays:
            raise ValueError(f"{path}: no array {key!r} (MV-TAP's tracks hold coords, occluded, is_bkgd, cam_rot, "
                             "cam_trans, intrinsics)")
    coords = arrays["coords"]
    if coords.ndim != 4 or coords.shape[-1] != 2 or coords.dtype.kind != "f":
        raise ValueError(f"{path}: coords: expected float (V, N, T, 2), got {coords.dtype} {coords.shape}")
    V, N, T, _ = coords.shape
    if arrays["occluded"].shape != (V, N, T):
        raise ValueError(f"{path}: occluded: expected {(V, N, T)} like coords, got {arrays['occluded'].shape}")
    return V, N, T


def background_flags(arrays: dict[str, np.ndarray], N: int, path: Path) -> np.ndarray:
    """(N,) bool ``is_bkgd`` of each track (MV-TAP reads ``is_bkgd[0, :, 0]``)."""
    if "is_bkgd" not in arrays:
        raise ValueError(f"{path}: no array 'is_bkgd', which points='dynamic' needs")
    flags = arrays["is_bkgd"]
    flags = flags[0, :, 0] if flags.ndim == 3 else flags
    if flags.shape != (N,):
        raise ValueError(f"{path}: is_bkgd: expected (N,) or (V, N, T) with N = {N}, got {arrays['is_bkgd'].shape}")
    return flags.astype(bool)


def first_visible_queries(tracks: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """``(N, 4)`` = (v, t, x, y) of each track's first visible frame (lowest view among those at that frame).

    Args:
        tracks: (V, T, N, 2); visible: (V, T, N), every track visible somewhere.
    """
    V, T, N = visible.shape
    flat = rearrange(visible, "v t n -> (t v) n")  # t-major: the first True is the earliest frame
    first = flat.float().argmax(0)  # (N,)
    t, v = first // V, first % V
    xy = tracks[v, t, torch.arange(N)]  # (N, 2)
    return torch.cat([torch.stack([v, t], -1).float(), xy], -1)


class MultiViewKubric(ReaderDataset):
    """MV-TAP-layout multi-view Kubric sequences as ``MultiViewClip``s with multi-view tracks.

    Args:
        root: a folder holding ``frames/`` and ``stacked_tracks/``, or a folder of such parts.
        size, crop: output ``(H, W)``; ``"center"`` crops to its aspect first, ``"stretch"`` resizes only.
        num_frames, stride, start: frame sampling (``start`` ``"random"``, ``"first"`` or an index).
        views: number of views drawn at random per sample (``None``: all, in folder order); MV-TAP draws 1-4.
        num_tracks: tracks per sample, drawn at random among those visible somewhere in the sampled views and
            frames; when fewer exist they are drawn again (``meta["repeated_tracks"]`` counts the repeats);
            ``None`` keeps them all (then only clips with equal N can be batched).
        points: ``"all"`` or ``"dynamic"`` (not ``is_bkgd``, MV-TAP's training choice).
        pixel_origin: ``"corner"`` (Kubric / TAP-Vid, the default) or ``"center"`` for coords and intrinsics.
        relative: poses relative to view 0's first sampled frame; default False (MV-TAP keeps Kubric's world).
        seed, shuffle, skip_errors: see ``ReaderDataset``.

    Samples: video (V, T, 3, H, W), w2c (V, T, 4, 4) OpenCV, K (V, T, 3, 3), tracks (V, T, N, 2) in output pixels,
    visible (V, T, N), queries (N, 4) = (v, t, x, y) at each track's first visible frame.
    """

    def __init__(self, root: str | Path, size=(256, 256), num_frames: int = 24, stride: int = 1, start="first",
                 views: int | None = None, num_tracks: int | None = 256, points: str = "all",
                 pixel_origin: str = "corner", crop: str = "center", relative: bool = False, seed: int = 0,
                 shuffle: bool = True, skip_errors: bool = False):
        self.root = Path(root)
        self.size = check_size(size)
        check_sampling(num_frames, stride, start)
        crop_box((1, 1), (1, 1), crop)
        for name, value in (("views", views), ("num_tracks", num_tracks)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}: expected None or an integer >= 1, got {value!r}")
        if points not in POINTS:
            raise ValueError(f"points: expected one of {POINTS}, got {points!r}")
        if pixel_origin not in PIXEL_ORIGINS:
            raise ValueError(f"pixel_origin: expected one of {PIXEL_ORIGINS}, got {pixel_origin!r}")
        self.num_frames, self.stride, self.start = num_frames, stride, start
        self.views, self.num_tracks, self.points, self.pixel_origin = views, num_tracks, points, pixel_origin
        self.crop, self.relative = crop, relative
        items = find_sequences(self.root)
        if not items:
            raise ValueError(f"Kubric root {self.root}: no frames/<seq>/ folder found")
        super().__init__(items, seed=seed, shuffle=shuffle, skip_errors=skip_errors)

    def load(self, item, generator: torch.Generator) -> MultiViewClip:
        part, seq = item
        folder = part / "frames" / seq
        path = part / "stacked_tracks" / seq / "tracks.npz"
        # 1. tracks file, views and frames
        arrays = load_tracks_file(path.parent)
        V_all, N_all, T_all = check_tracks(arrays, path)
        view_names = sorted(d for d in os.listdir(folder) if (folder / d).is_dir())
        if len(view_names) != V_all:
            raise ValueError(f"Kubric sequence {folder}: {len(view_names)} view folders, but {path} has {V_all} views")
        if self.views is None:
            chosen = list(range(V_all))
        elif self.views > V_all:
            raise ValueError(f"Kubric sequence {folder}: {V_all} views, expected at least views = {self.views}")
        else:
            chosen = torch.randperm(V_all, generator=generator)[: self.views].tolist()
        indices = frame_indices(T_all, self.num_frames, self.stride, self.start, generator, f"Kubric tracks {path}")
        # 2. frames: only the sampled ones, cut and resized
        videos, boxes = [], []
        for v in chosen:
            names = os.listdir(folder / view_names[v])
            files = sorted(f for f in names if f.startswith("rgba_") and f.endswith(".png"))
            if len(files) != T_all:
                raise ValueError(f"Kubric view {folder / view_names[v]}: {len(files)} rgba_*.png frames, but {path} "
                                 f"has {T_all}")
            images = [read_image(folder / view_names[v] / files[t]) for t in indices]
            if len({im.shape for im in images}) > 1:
                raise ValueError(f"Kubric view {folder / view_names[v]}: frames of different sizes "
                                 f"{sorted({im.shape[:2] for im in images})}")
            frames = np.stack(images)  # (T, H0, W0, 3)
            boxes.append(crop_box(frames.shape[1:3], self.size, self.crop))
            videos.append(crop_resize(frames, boxes[-1], self.size))
        # 3. cameras: OpenGL world-to-camera -> OpenCV; intrinsics to the centre convention, then the crop
        V, T = len(chosen), len(indices)
        rot = _per_frame(arrays["cam_rot"], "cam_rot", V_all, T_all, (3, 3), path)[chosen][:, indices]
        trans = _per_frame(arrays["cam_trans"], "cam_trans", V_all, T_all, (3,), path)[chosen][:, indices]
        intr = _per_frame(arrays["intrinsics"], "intrinsics", V_all, T_all, (3, 3), path)[chosen][:, indices]
        w2c_gl = torch.eye(4, dtype=torch.float64).repeat(V, T, 1, 1)
        w2c_gl[..., :3, :3], w2c_gl[..., :3, 3] = torch.from_numpy(rot).double(), torch.from_numpy(trans).double()
        check_extrinsics(w2c_gl, name=f"{path}: cam_rot, cam_trans")
        w2c = c2w_to_w2c(opengl_to_opencv(w2c_to_c2w(w2c_gl)))  # (V, T, 4, 4)
        if self.relative:
            w2c = w2c @ invert_rigid(w2c[0, 0])
        K = torch.from_numpy(intr).double()
        check_intrinsics(K, name=f"{path}: intrinsics")
        if self.pixel_origin == "corner":
            K = corner_to_center_intrinsics(K)
        K = torch.stack([crop_intrinsics(K[i], boxes[i], self.size) for i in range(V)])
        # 4. tracks: same convention and crop; visible = not occluded and inside the output frame
        coords = torch.from_numpy(arrays["coords"][chosen][:, :, indices]).double()  # (V, N, T, 2)
        tracks = rearrange(coords, "v n t c -> v t n c")
        if self.pixel_origin == "corner":
            tracks = corner_to_center(tracks)
        tracks = torch.stack([crop_points(tracks[i], boxes[i], self.size) for i in range(V)])  # (V, T, N, 2)
        occluded = torch.from_numpy(arrays["occluded"][chosen][:, :, indices].astype(bool))  # (V, N, T)
        finite = torch.isfinite(tracks).all(-1)  # (V, T, N)
        visible = ~rearrange(occluded, "v n t -> v t n") & inside_image(tracks, self.size) & finite
        tracks = torch.where(finite[..., None], tracks, torch.zeros_like(tracks))  # no NaN reaches a masked loss
        tracks, visible, repeated = self._pick_tracks(tracks, visible, arrays, N_all, path, generator)
        meta = {"dataset": "Kubric-MVTAP", "part": str(part.relative_to(self.root)) if part != self.root else ".",
                "sequence": seq, "views": [view_names[v] for v in chosen], "frames": indices,
                "repeated_tracks": repeated, "crop_box": [list(b) for b in boxes]}
        return MultiViewClip(video=torch.stack(videos), w2c=w2c.float(), K=K.float(), tracks=tracks.float(),
                             visible=visible, queries=first_visible_queries(tracks.float(), visible), meta=meta)

    def _pick_tracks(self, tracks, visible, arrays, N_all, path, generator):
        """Keep tracks visible somewhere (and dynamic if asked), then ``num_tracks`` of them at random."""
        keep = visible.any(dim=(0, 1))  # (N,)
        if self.points == "dynamic":
            keep &= ~torch.from_numpy(background_flags(arrays, N_all, path))
        ids = keep.nonzero()[:, 0]
        if len(ids) == 0:
            raise ValueError(f"{path}: no {'dynamic ' if self.points == 'dynamic' else ''}track is visible in the "
                             "sampled views and frames")
        repeated = 0
        if self.num_tracks is not None:
            if len(ids) >= self.num_tracks:
                ids = ids[torch.randperm(len(ids), generator=generator)[: self.num_tracks]]
            else:
                repeated = self.num_tracks - len(ids)
                ids = torch.cat([ids, ids[torch.randint(0, len(ids), (repeated,), generator=generator)]])
        return tracks[:, :, ids], visible[:, :, ids], repeated
