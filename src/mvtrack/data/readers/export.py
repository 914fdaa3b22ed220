"""Write clips in the published layouts the readers read: MultiCamVideo, CameraCtrl's RealEstate10K, MV-TAP's
Kubric. For fixtures and benchmarks, and to hand engine clips to other projects' loaders; each writer is the exact
inverse of its reader's conventions (Unreal rows in cm, normalised corner-based intrinsics, OpenGL world-to-camera
and corner-based pixels)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange

from mvtrack.geometry import c2w_to_w2c, opencv_to_opengl, w2c_to_c2w, write_re10k
from mvtrack.geometry.unreal import opencv_to_unreal

from .multicam import CAMERA_FILE, format_unreal_matrix


def _check_frames(frames: np.ndarray, ndim: int, name: str) -> None:
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8 or frames.ndim != ndim or frames.shape[-1] != 3:
        shape = "(V, T, H, W, 3)" if ndim == 5 else "(T, H, W, 3)"
        got = f"{frames.dtype} {frames.shape}" if isinstance(frames, np.ndarray) else type(frames).__name__
        raise ValueError(f"{name}: expected uint8 {shape}, got {got}")


def write_multicam_scene(scene: str | Path, frames: np.ndarray | None, w2c: torch.Tensor,
                         cameras: list[int] | None = None, fps: int = 15) -> Path:
    """Write one MultiCamVideo scene: ``videos/camNN.mp4`` and ``cameras/camera_extrinsics.json``.

    Args:
        scene: the scene folder (put it under ``f{mm}_aperture{...}/`` to name the focal length).
        frames: uint8 (V, T, H, W, 3), or None to write the cameras only.
        w2c: (V, T, 4, 4) OpenCV world-to-camera in the right-handed world of ``geometry.unreal`` (metres).
        cameras: camera numbers of the V views (default 1..V).
    """
    scene = Path(scene)
    if w2c.dim() != 4 or w2c.shape[-2:] != (4, 4):
        raise ValueError(f"w2c: expected (V, T, 4, 4), got {tuple(w2c.shape)}")
    V, T = w2c.shape[:2]
    cameras = list(range(1, V + 1)) if cameras is None else list(cameras)
    if len(cameras) != V:
        raise ValueError(f"cameras: expected {V} camera numbers, got {cameras}")
    matrices = opencv_to_unreal(w2c)  # (V, T, 4, 4) cm
    data = {f"frame{t}": {f"cam{c:02d}": format_unreal_matrix(matrices[v, t]) for v, c in enumerate(cameras)}
            for t in range(T)}
    (scene / CAMERA_FILE).parent.mkdir(parents=True, exist_ok=True)
    (scene / CAMERA_FILE).write_text(json.dumps(data, indent=4))
    if frames is not None:
        from mvtrack.viz.video import write_mp4  # here, not at import: mvtrack.viz pulls in matplotlib

        _check_frames(frames, 5, "frames")
        if frames.shape[:2] != (V, T):
            raise ValueError(f"frames: expected {V} views of {T} frames like w2c, got {frames.shape}")
        for v, c in enumerate(cameras):
            write_mp4(scene / "videos" / f"cam{c:02d}.mp4", frames[v], fps=fps)
    return scene


def write_re10k_layout(root: str | Path, clips: list[dict], split: str = "train", fps: int = 30) -> Path:
    """Write clips in CameraCtrl's RealEstate10K layout and their annotation file ``annotations/{split}.json``.

    Args:
        clips: dicts with ``name``, ``frames`` uint8 (T, H, W, 3), ``w2c`` (T, 4, 4) OpenCV, ``K`` (T, 3, 3) pixels
            of the frames, and optional ``video_id`` (the YouTube id folder, default ``video``) and ``caption``.
    """
    from mvtrack.viz.video import write_mp4  # here, not at import: mvtrack.viz pulls in matplotlib

    root = Path(root)
    entries = []
    for clip in clips:
        name, frames = clip["name"], clip["frames"]
        _check_frames(frames, 4, f"clip {name}: frames")
        H, W = frames.shape[1:3]
        pose_file = f"pose_files/{name}.txt"
        clip_path = f"video_clips/{clip.get('video_id', 'video')}/{name}.mp4"
        write_re10k(root / pose_file, clip["w2c"], clip["K"], H, W, timestamps=[33366 * t for t in range(len(frames))],
                    url=f"https://www.youtube.com/watch?v={clip.get('video_id', 'video')}")
        write_mp4(root / clip_path, frames, fps=fps)
        entries.append({"clip_name": name, "clip_path": clip_path, "pose_file": pose_file,
                        "caption": clip.get("caption", "")})
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"{split}.json").write_text(json.dumps(entries))
    return root


def write_kubric_sequence(part: str | Path, name: str, frames: np.ndarray, w2c: torch.Tensor, K: torch.Tensor,
                          tracks: torch.Tensor, visible: torch.Tensor, is_bkgd: torch.Tensor | None = None,
                          view_names: list[str] | None = None) -> Path:
    """Write one sequence in MV-TAP's Kubric layout: ``frames/<name>/<view>/rgba_%05d.png`` and
    ``stacked_tracks/<name>/tracks.npz``.

    Args:
        frames: uint8 (V, T, H, W, 3); w2c: (V, T, 4, 4) OpenCV; K: (V, T, 3, 3) pixels (mvtrack's centre convention).
        tracks: (V, T, N, 2) pixels (centre convention); visible: (V, T, N); is_bkgd: (N,) bool or None (all False).
        view_names: folder names of the views (default ``view_0``, ...), sorted as the reader sorts them.
    """
    _check_frames(frames, 5, "frames")
    part = Path(part)
    V, T, N = visible.shape
    view_names = view_names or [f"view_{v}" for v in range(V)]
    if sorted(view_names) != list(view_names):
        raise ValueError(f"view_names: expected names in sorted order (the reader sorts them), got {view_names}")
    for v, view in enumerate(view_names):
        folder = part / "frames" / name / view
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(T):
            rgba = np.concatenate([frames[v, t], np.full((*frames.shape[2:4], 1), 255, np.uint8)], -1)
            cv2.imwrite(str(folder / f"rgba_{t:05d}.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    w2c_gl = c2w_to_w2c(opencv_to_opengl(w2c_to_c2w(w2c.double())))
    K_corner = K.double().clone()
    K_corner[..., :2, 2] += 0.5
    bkgd = torch.zeros(N, dtype=torch.bool) if is_bkgd is None else is_bkgd.bool()
    out = part / "stacked_tracks" / name
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "tracks.npz",
             coords=rearrange(tracks.double() + 0.5, "v t n c -> v n t c").numpy().astype(np.float32),
             occluded=rearrange(~visible, "v t n -> v n t").numpy(),
             is_bkgd=bkgd[None, :, None].expand(V, N, T).numpy(),
             cam_rot=w2c_gl[..., :3, :3].numpy().astype(np.float32),
             cam_trans=w2c_gl[..., :3, 3].numpy().astype(np.float32),
             intrinsics=K_corner.numpy().astype(np.float32))
    return part / "frames" / name
