"""Video files: MP4 (H.264 through PyAV, no system ffmpeg needed) and GIF."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from einops import rearrange


def to_uint8_frames(video: torch.Tensor) -> np.ndarray:
    """Float frames ``(T, 3, H, W)`` in [0, 1] to uint8 ``(T, H, W, 3)``."""
    if video.dim() != 4 or video.shape[1] != 3:
        raise ValueError(f"video: expected (T, 3, H, W), got {tuple(video.shape)}")
    return (rearrange(video, "t c h w -> t h w c").clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def upscale_frames(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling of frames ``(..., H, W, C)`` by an integer factor, for legible small clips."""
    if scale == 1:
        return frames
    return np.repeat(np.repeat(frames, scale, axis=-3), scale, axis=-2)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` as H.264 MP4 (sizes padded to even numbers, as the codec needs)."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames: expected uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    import av

    with av.open(str(path), mode="w") as container:  # PyAV directly: imageio's plugin runs gc.collect on close
        # Constant quantiser 18, one thread. x264's default rate control (CRF with adaptive quantisation and
        # macroblock trees) gave different pixels for the same frames from one process to the next once torch had
        # run (measured), so scored ground truth and predictions drifted apart; constant QP is repeatable.
        stream = container.add_stream("libx264", rate=fps, options={"threads": "1", "qp": "18"})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return path


def write_gif(path: str | Path, frames: np.ndarray, fps: int = 8) -> Path:
    """Write uint8 frames ``(T, H, W, 3)`` as a looping GIF."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(path, frames, duration=int(1000 / fps), loop=0)
    return path


def _decode_av(path: Path) -> np.ndarray:
    """All frames of a video through PyAV directly (imageio's PyAV plugin runs gc.collect on every close,
    0.2 s per file, which dominated scoring short clips)."""
    import av

    with av.open(str(path)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)


def read_video(path: str | Path) -> np.ndarray:
    """Read a video file into uint8 ``(T, H, W, 3)``; raises ``ValueError`` naming the file if it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path}: not found")
    try:
        frames = iio.imread(path) if path.suffix.lower() == ".gif" else _decode_av(path)
    except Exception as e:  # decoders raise many types; the caller needs the file and the reason
        raise ValueError(f"video {path}: cannot be decoded ({type(e).__name__}: {e})") from None
    if frames.ndim != 4 or frames.shape[0] == 0:
        raise ValueError(f"video {path}: expected frames (T, H, W, 3), got {frames.shape}")
    return frames[..., :3]


def contact_sheet(path: str | Path, rows: list[list[np.ndarray]], names: list[str], scale: int | None = None) -> Path:
    """A labelled PNG a person can look at: a grid of frames, one column per name (a header row gives the names).

    Args:
        rows: lists of (H, W, 3) uint8 frames of one size, one per name.
        scale: nearest upscaling (default: to about 192 px a frame).
    """
    import cv2

    H = rows[0][0].shape[0]
    scale = scale or max(1, 192 // H)
    lines = [np.concatenate([upscale_frames(f[None], scale)[0] for f in row], 1) for row in rows]
    width = lines[0].shape[1] // len(names)
    header = np.full((22, lines[0].shape[1], 3), 255, np.uint8)
    for k, name in enumerate(names):
        cv2.putText(header, str(name)[: max(4, width // 8)], (k * width + 4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    sheet = np.concatenate([header] + [np.pad(line, ((0, 2), (0, 0), (0, 0)), constant_values=255) for line in lines])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path
