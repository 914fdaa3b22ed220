"""WebDataset-compatible tar shards of MultiViewClips.

Each clip is a group of tar members ``KEY.FIELD.npy`` (numpy's format, read with ``allow_pickle=False``)
followed by ``KEY.json`` (metadata and the list of fields). The JSON comes last, so a reader knows a
sample is complete when it arrives; nothing in a shard is ever unpickled. A shard may also hold cached latents
(``LatentClip``, JSON ``"kind": "latents"``, see ``latents``); readers return whichever kind a sample is. Everything but the video is stored at
full precision. The video is either raw uint8 ``KEY.video.npy`` ``(V, T, H, W, 3)`` (``video_format="npy"``, the
default and the only format of older shards) or encoded (``"mp4"``, ``"jpg"``, ``"png"``: members
``KEY.video.{v}.mp4`` or ``KEY.video.{v}.{t}.jpg|png``, see ``video_codec``), declared in the JSON as
``"video": {"format", "shape": [V, T, H, W], "quality"}``. Readers read every format transparently.
"""

from __future__ import annotations

import glob
import io
import json
import math
import os
import tarfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from mvtrack.outputs import check_output_dir

from .clip import SCHEMA, MultiViewClip
from .latents import KIND, LATENT_SCHEMA, LatentClip
from .video_codec import ENCODED_FORMATS, VideoCodecError, check_quality, decode_video, encode_video

SHARD_NAME = "shard-{:06d}.tar"
# Largest tar member read into memory: a 4-view, 64-frame 1024x1024 uint8 video is 768 MiB. A member (or a .npy
# header) claiming more is skipped as corrupt instead of being allocated.
MAX_MEMBER_BYTES = 2**31
VIDEO_FORMATS = ("npy",) + ENCODED_FORMATS


class ShardError(ValueError):
    """A shard or one of its samples cannot be read."""


@dataclass
class ReadStats:
    """What a reader saw: shards opened, clips read, corrupt shards and skipped samples."""

    shards: int = 0
    clips: int = 0
    corrupt_shards: int = 0
    skipped_samples: int = 0


def encode_clip(clip: MultiViewClip, video_format: str = "npy", quality: int | None = None) -> dict[str, bytes]:
    """Tar member payloads ``{FIELD.npy: bytes, ..., json: bytes}`` of one unbatched clip.

    Args:
        video_format: ``"npy"`` (raw uint8, lossless), ``"mp4"`` (H.264 4:4:4), ``"jpg"`` or ``"png"`` (one image
            per view and frame; PNG is lossless).
        quality: x264 QP for mp4 (default 18), JPEG quality (95) or PNG compression level (3).
    """
    if clip.batched:
        raise ValueError("encode_clip: expected an unbatched clip")
    if isinstance(clip, LatentClip):
        return _encode_latents(clip)
    if video_format not in VIDEO_FORMATS:
        raise ValueError(f"video_format: expected one of {VIDEO_FORMATS}, got {video_format!r}")
    info = {"fields": sorted(clip.tensors()), "meta": clip.meta}
    out = {}
    for name, value in clip.tensors().items():
        if name == "video":
            array = (rearrange(value, "v t c h w -> v t h w c").clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
            if video_format != "npy":
                quality = check_quality(video_format, quality)
                out.update(encode_video(array, video_format, quality))
                info["video"] = {"format": video_format, "shape": list(array.shape[:4]), "quality": quality}
                continue
        else:
            array = value.detach().cpu().numpy()
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        out[f"{name}.npy"] = buf.getvalue()
    out["json"] = json.dumps(info).encode()
    return out


def _encode_latents(clip: LatentClip) -> dict[str, bytes]:
    out = {}
    for name, value in clip.tensors().items():
        buf = io.BytesIO()
        np.save(buf, value.detach().cpu().numpy(), allow_pickle=False)
        out[f"{name}.npy"] = buf.getvalue()
    out["json"] = json.dumps({"kind": KIND, "fields": sorted(clip.tensors()), "meta": clip.meta}).encode()
    return out


def _npy_header(data: bytes, name: str, where: str, schema: dict = SCHEMA) -> None:
    """Check a ``.npy`` payload's header against ``schema[name]`` and its own length before anything is allocated."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except Exception as e:  # numpy's header parser raises many types on hostile bytes (SyntaxError, TokenError)
        raise ShardError(f"{where}: field {name} is not a valid .npy array ({type(e).__name__}: {e})") from None
    axes = "V T H W 3".split() if name == "video" and schema is SCHEMA else schema[name][0].split()  # channels-last
    if len(shape) != len(axes) or any(a.isdigit() and n != int(a) for a, n in zip(axes, shape)):
        raise ShardError(f"{where}: field {name}: expected shape ({', '.join(axes)}), got {shape}")
    kind = schema[name][1]
    allowed = "u" if name == "video" and schema is SCHEMA else {"float": "f", "bool": "b", "int": "iu"}[kind]
    if dtype.hasobject or dtype.kind not in allowed or not dtype.isnative:
        expected = "uint8" if name == "video" else f"a native {kind} type"
        raise ShardError(f"{where}: field {name}: expected {expected}, got dtype {dtype.str}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_MEMBER_BYTES:
        raise ShardError(f"{where}: field {name}: header claims {shape} ({nbytes / 2**30:.1f} GiB), more than the "
                         f"{MAX_MEMBER_BYTES / 2**30:.0f} GiB limit of one member")
    if nbytes != len(data) - f.tell():
        raise ShardError(f"{where}: field {name}: header claims {shape} {dtype} ({nbytes} bytes) but the member "
                         f"holds {len(data) - f.tell()}")


def _check_info(info, where: str) -> None:
    if not isinstance(info, dict):
        raise ShardError(f"{where}: json member: expected an object, got {type(info).__name__}")
    fields = info.get("fields", [])
    if not isinstance(fields, list) or not all(isinstance(x, str) for x in fields):
        raise ShardError(f"{where}: json member: expected fields to be a list of names, got {fields!r}")
    meta = info.get("meta", {})
    if not isinstance(meta, dict):
        raise ShardError(f"{where}: json member: expected meta to be an object, got {type(meta).__name__}")
    index = meta.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ShardError(f"{where}: json member: expected meta.index to be an integer >= 0, got {index!r}")
    video = info.get("video")
    if video is not None:
        if not isinstance(video, dict) or video.get("format") not in ENCODED_FORMATS:
            raise ShardError(f"{where}: json member: expected video to be an object with format in {ENCODED_FORMATS}, "
                             f"got {video!r}")
        shape = video.get("shape")
        if not (isinstance(shape, list) and len(shape) == 4
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape)):
            raise ShardError(f"{where}: json member: expected video.shape to be [V, T, H, W] of positive integers, "
                             f"got {shape!r}")
        if math.prod(shape) * 3 > MAX_MEMBER_BYTES:
            raise ShardError(f"{where}: json member: video.shape {shape} is more than the "
                             f"{MAX_MEMBER_BYTES / 2**30:.0f} GiB limit of one video")


def decode_clip(members: dict[str, bytes], where: str = "sample") -> MultiViewClip:
    """Inverse of ``encode_clip`` for every video format; raises ``ShardError`` naming ``where`` and the field on
    any problem.

    Every ``.npy`` header is checked against the field's shape and the member's length before its array is
    allocated, and every encoded stream's or image's size against the declared video shape before it is decoded,
    so a corrupt or hostile header cannot make the reader allocate what it claims.
    """
    if members.get("json") is None:
        raise ShardError(f"{where}: no json member" if "json" not in members else f"{where}: json member too large")
    try:
        info = json.loads(members["json"])
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise ShardError(f"{where}: json member is not valid JSON ({e})") from None
    _check_info(info, where)
    if info.get("kind") == KIND:
        return _decode_latents(members, info, where)
    tensors = {}
    for name in info.get("fields", []):
        if name not in SCHEMA:
            raise ShardError(f"{where}: unknown field {name!r}")
        if name == "video" and "video" in info:
            video = info["video"]
            try:
                array = decode_video(members, video["format"], tuple(video["shape"]), where)
            except VideoCodecError as e:
                raise ShardError(str(e)) from None
            tensors[name] = rearrange(torch.from_numpy(array).float() / 255.0, "v t h w c -> v t c h w")
            continue
        if f"{name}.npy" not in members:
            raise ShardError(f"{where}: field {name} listed in json but missing")
        data = members[f"{name}.npy"]
        if data is None:
            raise ShardError(f"{where}: field {name}: member larger than {MAX_MEMBER_BYTES / 2**30:.0f} GiB, not read")
        _npy_header(data, name, where)
        try:
            array = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise ShardError(f"{where}: field {name} is not a valid .npy array ({e})") from None
        if name == "video":
            if array.dtype != np.uint8:
                raise ShardError(f"{where}: field video: expected uint8, got {array.dtype}")
            tensors[name] = rearrange(torch.from_numpy(array).float() / 255.0, "v t h w c -> v t c h w")
        else:
            tensors[name] = torch.from_numpy(array)
    _check_cameras(tensors, where)
    try:
        return MultiViewClip(**tensors, meta=info.get("meta", {}))
    except (ValueError, TypeError) as e:
        raise ShardError(f"{where}: {e}") from None


def _check_cameras(tensors: dict[str, torch.Tensor], where: str) -> None:
    """A sample's cameras must be rigid transforms (rotations with det = +1, last row 0 0 0 1) and pinhole
    intrinsics with positive focal lengths: anything else is drawn and trained on as nonsense, so it is skipped."""
    from mvtrack.geometry import check_extrinsics, check_intrinsics

    for name, check in (("w2c", check_extrinsics), ("K", check_intrinsics)):
        value, square = tensors.get(name), (4, 4) if name == "w2c" else (3, 3)
        if value is not None and value.is_floating_point() and value.shape[-2:] == square:
            try:
                check(value.double(), name=f"field {name}")
            except ValueError as e:
                raise ShardError(f"{where}: {e}") from None


def _decode_latents(members: dict[str, bytes], info: dict, where: str) -> LatentClip:
    tensors = {}
    for name in info.get("fields", []):
        if name not in LATENT_SCHEMA:
            raise ShardError(f"{where}: unknown latent field {name!r}")
        data = members.get(f"{name}.npy")
        if data is None:
            raise ShardError(f"{where}: field {name} listed in json but missing or too large")
        _npy_header(data, name, where, LATENT_SCHEMA)
        try:
            tensors[name] = torch.from_numpy(np.load(io.BytesIO(data), allow_pickle=False))
        except (ValueError, OSError, EOFError) as e:
            raise ShardError(f"{where}: field {name} is not a valid .npy array ({e})") from None
    _check_cameras(tensors, where)
    try:
        return LatentClip(**tensors, meta=info.get("meta", {}))
    except (ValueError, TypeError) as e:
        raise ShardError(f"{where}: {e}") from None


class ShardWriter:
    """Write clips into numbered shards of ``clips_per_shard``; each shard appears atomically when complete.

    ``video_format`` and ``quality`` choose how the video is stored (``encode_clip``); readers need not know.
    """

    def __init__(self, out_dir: str | Path, clips_per_shard: int = 64, start_shard: int = 0,
                 video_format: str = "npy", quality: int | None = None):
        if clips_per_shard < 1:
            raise ValueError(f"clips_per_shard: expected >= 1, got {clips_per_shard}")
        if video_format not in VIDEO_FORMATS:
            raise ValueError(f"video_format: expected one of {VIDEO_FORMATS}, got {video_format!r}")
        self.quality = None if video_format == "npy" else check_quality(video_format, quality)
        self.video_format = video_format
        self.out_dir = check_output_dir(out_dir)  # created with the first shard: a refused run leaves nothing
        self.clips_per_shard = clips_per_shard
        self.shard_index = start_shard
        self.count = 0
        self.written: list[Path] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None

    def write(self, clip: MultiViewClip) -> None:
        if self._tar is None:
            self._open()
        key = f"{self.count:09d}"
        for suffix, payload in encode_clip(clip, self.video_format, self.quality).items():
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            self._tar.addfile(info, io.BytesIO(payload))
        self.count += 1
        if self.count % self.clips_per_shard == 0:
            self._close()

    def _open(self):
        self.out_dir.mkdir(parents=True, exist_ok=True)
        final = self.out_dir / SHARD_NAME.format(self.shard_index)
        self._tmp = final.with_suffix(".tar.tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)

    def _close(self):
        if self._tar is None:
            return
        self._tar.close()
        final = self.out_dir / SHARD_NAME.format(self.shard_index)
        os.replace(self._tmp, final)
        self.written.append(final)
        self._tar = None
        self.shard_index += 1

    def close(self) -> list[Path]:
        self._close()
        return self.written

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is not None and self._tar is not None:
            self._tar.close()
            self._tmp.unlink(missing_ok=True)  # an interrupted shard is dropped, never half-written
            self._tar = None
        self.close()


def write_shards(clips: Iterable[MultiViewClip], out_dir: str | Path, clips_per_shard: int = 64,
                 video_format: str = "npy", quality: int | None = None) -> list[Path]:
    """Write unbatched clips into shards under ``out_dir`` (video stored as ``video_format``); returns the paths."""
    with ShardWriter(out_dir, clips_per_shard, video_format=video_format, quality=quality) as writer:
        for clip in clips:
            writer.write(clip)
    return writer.written


def list_shards(source: str | Path | list) -> list[Path]:
    """Shard paths from a directory, a glob pattern, a single .tar file or a list of those."""
    if isinstance(source, (list, tuple)):
        return [p for s in source for p in list_shards(s)]
    source = str(source)
    if os.path.isdir(source):
        paths = sorted(Path(source).glob("*.tar"))
    elif any(ch in source for ch in "*?["):
        paths = sorted(Path(p) for p in glob.glob(source))
    elif os.path.isfile(source):
        paths = [Path(source)]
    else:
        raise FileNotFoundError(f"shards: {source} is neither a directory, a .tar file nor a matching pattern")
    if not paths:
        raise FileNotFoundError(f"shards: no .tar files in {source}")
    return paths


@dataclass(frozen=True)
class SampleRef:
    """Where one sample's members lie in its shard: ``(suffix, byte offset, size)`` of each, the JSON last."""

    shard: int  # index of the shard in its reader's list (``ShardClips.shards``)
    key: str
    members: tuple[tuple[str, int, int], ...]


def index_shard(path: str | Path, stats: ReadStats, shard: int = 0) -> list[SampleRef]:
    """The complete samples of one shard, from its tar headers alone (each member's data is seeked over, nothing
    is read or decoded). A truncated or unreadable shard keeps the samples before the damage, and a sample with a
    member over ``MAX_MEMBER_BYTES`` is left out, each with a warning and a count in ``stats`` (``shards``,
    ``corrupt_shards``, ``skipped_samples``; ``clips`` is counted by whoever reads them)."""
    stats.shards += 1
    size = os.path.getsize(path)
    refs: list[SampleRef] = []
    members: list[tuple[str, int, int]] = []
    key, oversized = None, False
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                if info.offset_data + info.size > size:
                    raise EOFError(f"member {info.name} ends past the end of the file")
                name_key, _, suffix = info.name.partition(".")
                if name_key != key:
                    members, key, oversized = [], name_key, False
                oversized |= info.size > MAX_MEMBER_BYTES
                members.append((suffix, info.offset_data, info.size))
                if suffix == "json":
                    if oversized:
                        stats.skipped_samples += 1
                        warnings.warn(f"skipping sample {key} of {path}: a member is larger than "
                                      f"{MAX_MEMBER_BYTES / 2**30:.0f} GiB", stacklevel=3)
                    else:
                        refs.append(SampleRef(shard, key, tuple(members)))
                    members, key = [], None
    except (tarfile.TarError, EOFError, OSError) as e:
        stats.corrupt_shards += 1
        warnings.warn(f"shard {path} is truncated or corrupt ({e}); kept its {len(refs)} complete clips, "
                      f"skipped the rest", stacklevel=3)
        return refs
    if members:  # cut at a member boundary: tarfile sees a clean end, but the last sample never got its json
        stats.corrupt_shards += 1
        warnings.warn(f"shard {path} is truncated or corrupt (sample {key} has no json member); kept its "
                      f"{len(refs)} complete clips, skipped the rest", stacklevel=3)
    return refs


def read_sample(path: str | Path, ref: SampleRef) -> MultiViewClip | LatentClip:
    """The clip ``ref`` (``index_shard``) of the shard at ``path``, unbatched; ``ShardError`` naming the shard and
    sample when it cannot be read or does not decode."""
    payloads = {}
    try:
        with open(path, "rb") as f:
            for suffix, offset, size in ref.members:
                f.seek(offset)
                payloads[suffix] = f.read(size)
                if len(payloads[suffix]) != size:
                    raise ShardError(f"{path}: sample {ref.key}: member {suffix} is cut short (the shard changed "
                                     "after it was indexed)")
    except OSError as e:
        raise ShardError(f"{path}: sample {ref.key} cannot be read ({e})") from None
    return decode_clip(payloads, where=f"{path}: sample {ref.key}")


def iter_shard(path: str | Path, stats: ReadStats | None = None) -> Iterator[MultiViewClip]:
    """Yield the clips of one shard (``index_shard``, then each sample read in turn). A corrupt sample is skipped
    and a truncated or unreadable shard ends early, each with a warning and a count in ``stats``; every complete
    sample before the damage is kept."""
    stats = stats if stats is not None else ReadStats()
    for ref in index_shard(path, stats):
        try:
            clip = read_sample(path, ref)
        except ShardError as e:
            stats.skipped_samples += 1
            warnings.warn(f"skipping corrupt sample: {e}", stacklevel=2)
        else:
            stats.clips += 1
            yield clip
