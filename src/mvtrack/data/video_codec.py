"""Encoded video inside shards: uint8 frames to MP4 (H.264) or per-frame JPEG / PNG members and back.

A raw ``video.npy`` of a 2-view, 81-frame 480x832 clip is ~194 MB; the same clip as H.264 is a few MB. Members
of an encoded clip, named so that WebDataset sees one sample per key:

- ``mp4``: ``video.{v}.mp4``, one H.264 stream per view, 4:4:4 chroma (no chroma subsampling: 4:2:0 smeared
  the colour edges of small synthetic frames by up to 120/255), constant quantiser ``quality`` (default 18),
  one thread, so that the same frames give the same bytes in every process (x264's default rate control did not;
  see ``mvtrack.viz.video.write_mp4``). Odd sizes are edge-padded to even ones and cropped back on decoding.
- ``jpg`` / ``png``: ``video.{v}.{t}.jpg|png``, one image per view and frame (random access to frames; PNG is
  lossless; JPEG at 4:4:4 chroma, ``quality`` 95 by default).

Decoding checks every stream's or image's declared size against the clip's JSON before any frame is decoded, so
damaged or hostile bytes cannot make the reader allocate more than the clip declares; any failure raises
``VideoCodecError`` naming the member.
"""

from __future__ import annotations

import io

import cv2
import numpy as np

ENCODED_FORMATS = ("mp4", "jpg", "png")
DEFAULT_QUALITY = {"mp4": 18, "jpg": 95, "png": 3}  # x264 QP (0-51, lower is better), JPEG quality, PNG zlib level
QUALITY_RANGE = {"mp4": (0, 51), "jpg": (1, 100), "png": (0, 9)}


class VideoCodecError(ValueError):
    """Encoded video members that cannot be decoded into the frames their clip declares."""


def check_quality(video_format: str, quality: int | None) -> int:
    """The quality setting to use for ``video_format``; raises ``ValueError`` naming the option when out of range."""
    if video_format not in ENCODED_FORMATS:
        raise ValueError(f"video_format: expected one of {('npy',) + ENCODED_FORMATS}, got {video_format!r}")
    if quality is None:
        return DEFAULT_QUALITY[video_format]
    lo, hi = QUALITY_RANGE[video_format]
    if isinstance(quality, bool) or not isinstance(quality, int) or not lo <= quality <= hi:
        raise ValueError(f"quality: expected an integer in [{lo}, {hi}] for {video_format}, got {quality!r}")
    return quality


def member_names(video_format: str, views: int, frames: int) -> list[str]:
    """Member suffixes (after the sample key) holding the video of a clip, in writing order."""
    if video_format == "mp4":
        return [f"video.{v}.mp4" for v in range(views)]
    return [f"video.{v}.{t}.{video_format}" for v in range(views) for t in range(frames)]


def encode_video(frames: np.ndarray, video_format: str, quality: int | None = None) -> dict[str, bytes]:
    """Encode uint8 frames ``(V, T, H, W, 3)`` into member payloads ``{suffix: bytes}``."""
    if frames.dtype != np.uint8 or frames.ndim != 5 or frames.shape[-1] != 3:
        raise ValueError(f"encode_video: expected uint8 (V, T, H, W, 3), got {frames.dtype} {frames.shape}")
    quality = check_quality(video_format, quality)
    V, T = frames.shape[:2]
    names = member_names(video_format, V, T)
    if video_format == "mp4":
        return {name: _encode_mp4(frames[v], quality) for v, name in enumerate(names)}
    flag = ([cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
            if video_format == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, quality])
    out = {}
    for name, frame in zip(names, frames.reshape(V * T, *frames.shape[2:])):
        ok, data = cv2.imencode(f".{video_format}", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), flag)
        if not ok:
            raise ValueError(f"encode_video: OpenCV could not encode a {frame.shape} frame as {video_format}")
        out[name] = data.tobytes()
    return out


def _encode_mp4(frames: np.ndarray, qp: int) -> bytes:
    """H.264 4:4:4 bytes of uint8 frames ``(T, H, W, 3)``, edge-padded to even sizes."""
    import av

    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8, options={"threads": "1", "qp": str(qp)})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")))
        container.mux(stream.encode())
    return buf.getvalue()


def decode_video(members: dict[str, bytes | None], video_format: str, shape: tuple[int, int, int, int],
                 where: str = "sample") -> np.ndarray:
    """Inverse of ``encode_video`` for a clip declared ``shape = (V, T, H, W)``: uint8 ``(V, T, H, W, 3)``.

    Raises ``VideoCodecError`` naming ``where`` and the member when one is missing, oversized, undecodable, or
    holds another number or size of frames than declared.
    """
    V, T, H, W = shape
    out = np.empty((V, T, H, W, 3), np.uint8)
    names = member_names(video_format, V, T)
    for name in names:
        if name not in members:
            raise VideoCodecError(f"{where}: member {name} of the {video_format} video is missing")
        if members[name] is None:
            raise VideoCodecError(f"{where}: member {name} is too large to read")
    if video_format == "mp4":
        for v, name in enumerate(names):
            out[v] = _decode_mp4(members[name], T, H, W, f"{where}: {name}")
        return out
    for i, name in enumerate(names):
        out[i // T, i % T] = _decode_image(members[name], H, W, f"{where}: {name}")
    return out


def _decode_mp4(data: bytes, T: int, H: int, W: int, where: str) -> np.ndarray:
    import av

    Hp, Wp = H + H % 2, W + W % 2
    frames = np.empty((T, H, W, 3), np.uint8)
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format="mp4") as container:
            if not container.streams.video:
                raise VideoCodecError(f"{where}: no video stream")
            ctx = container.streams.video[0].codec_context
            if (ctx.height, ctx.width) != (Hp, Wp):
                raise VideoCodecError(f"{where}: stream is {ctx.height}x{ctx.width}, expected {Hp}x{Wp}")
            for frame in container.decode(video=0):
                if (frame.height, frame.width) != (Hp, Wp):
                    raise VideoCodecError(f"{where}: frame {count} is {frame.height}x{frame.width}, expected {Hp}x{Wp}")
                if count == T:
                    raise VideoCodecError(f"{where}: holds more than the {T} frames declared")
                frames[count] = frame.to_ndarray(format="rgb24")[:H, :W]
                count += 1
    except VideoCodecError:
        raise
    except Exception as e:  # PyAV raises many types (InvalidDataError, EOFError, ValueError...) on damaged bytes
        raise VideoCodecError(f"{where}: not a decodable MP4 ({type(e).__name__}: {e})") from None
    if count != T:
        raise VideoCodecError(f"{where}: holds {count} frames, expected {T}")
    return frames


def _decode_image(data: bytes, H: int, W: int, where: str) -> np.ndarray:
    from PIL import Image

    try:  # the header alone, before OpenCV allocates the image it declares
        with Image.open(io.BytesIO(data)) as im:
            size = im.size
    except Exception as e:  # PIL raises many types on damaged headers
        raise VideoCodecError(f"{where}: not a decodable image ({type(e).__name__}: {e})") from None
    if size != (W, H):
        raise VideoCodecError(f"{where}: image is {size[1]}x{size[0]}, expected {H}x{W}")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.shape != (H, W, 3):
        raise VideoCodecError(f"{where}: not a decodable {H}x{W} colour image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
