"""What every dataset reader shares: frame sampling, decoding only the frames a sample needs, crop and resize at
load, and a torch dataset whose sample ``i`` of an epoch is the same whichever rank or worker reads it."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
from einops import rearrange
from torch.utils.data import IterableDataset

from mvtrack.geometry.crop import center_crop_box

from ..clip import MultiViewClip
from ..datasets import worker_split
from ..shards import ReadStats

CROPS = ("center", "stretch")
STARTS = ("random", "first")


def check_size(size, name: str = "size") -> tuple[int, int]:
    """``(H, W)`` from an int or a pair of positive ints; raises ``ValueError`` naming the option."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if not (isinstance(size, (tuple, list)) and len(size) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in size)):
        raise ValueError(f"{name}: expected a positive int or (H, W) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


def check_sampling(num_frames: int, stride: int, start) -> None:
    """Raise ``ValueError`` naming the option unless ``num_frames`` >= 1, ``stride`` >= 1 and ``start`` is valid."""
    for name, value in (("num_frames", num_frames), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    if not (start in STARTS or (isinstance(start, int) and not isinstance(start, bool) and start >= 0)):
        raise ValueError(f"start: expected one of {STARTS} or an integer >= 0, got {start!r}")


def frame_indices(total: int, num_frames: int, stride: int, start, generator: torch.Generator,
                  where: str) -> list[int]:
    """``num_frames`` indices ``s, s + stride, ...`` into ``total`` frames; ``start`` is ``"random"`` (uniform over
    the starts that fit), ``"first"`` (0) or an index. Raises ``ValueError`` naming ``where`` when they do not fit."""
    span = (num_frames - 1) * stride + 1
    if span > total:
        raise ValueError(f"{where}: has {total} frames, expected at least {span} ({num_frames} frames at stride "
                         f"{stride})")
    if start == "random":
        s = int(torch.randint(0, total - span + 1, (1,), generator=generator))
    elif start == "first":
        s = 0
    else:
        if start + span > total:
            raise ValueError(f"{where}: start {start} with {num_frames} frames at stride {stride} needs "
                             f"{start + span} frames, has {total}")
        s = start
    return list(range(s, s + span, stride))


def read_video_frames(path: str | Path, indices: list[int]) -> np.ndarray:
    """uint8 ``(len(indices), H, W, 3)``: the frames at sorted ``indices`` of a video file, decoding no further than
    the last one; raises ``ValueError`` naming the file when it is unreadable or too short."""
    import av

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video {path}: not found")
    wanted = {i: n for n, i in enumerate(indices)}
    last = max(indices)
    out: list[np.ndarray | None] = [None] * len(indices)
    count, streams = 0, 0
    try:
        with av.open(str(path)) as container:
            streams = len(container.streams.video)
            for frame in container.decode(video=0) if streams else ():
                if count in wanted:
                    out[wanted[count]] = frame.to_ndarray(format="rgb24")
                count += 1
                if count > last:
                    break
    except Exception as e:  # decoders raise many types; the caller needs the file and the reason
        raise ValueError(f"video {path}: cannot be decoded ({type(e).__name__}: {e})") from None
    if not streams:
        raise ValueError(f"video {path}: no video stream")
    if count <= last:
        raise ValueError(f"video {path}: has {count} frames, expected at least {last + 1}")
    return np.stack(out)


def read_image(path: str | Path) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB of an 8-bit image file (grey and alpha dropped); ``ValueError`` naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"image {path}: missing or not a decodable image")
    if image.dtype != np.uint8:
        raise ValueError(f"image {path}: expected 8 bits per channel, got {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def crop_box(source: tuple[int, int], size: tuple[int, int], crop: str) -> tuple[int, int, int, int]:
    """``(y0, x0, h, w)`` cut from a ``source = (H0, W0)`` frame before resizing to ``size``: the largest centred
    window of the target aspect (``"center"``), or the whole frame, stretched (``"stretch"``)."""
    if crop == "center":
        return center_crop_box(source, size)
    if crop == "stretch":
        return 0, 0, source[0], source[1]
    raise ValueError(f"crop: expected one of {CROPS}, got {crop!r}")


def crop_resize(frames: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    """Cut ``box`` from uint8 frames ``(T, H0, W0, 3)`` and resize to ``size`` (area averaging when shrinking,
    bilinear when growing; both keep pixel centres aligned, as ``geometry.crop`` assumes).

    Returns:
        (T, 3, H, W) float in [0, 1].
    """
    y0, x0, h, w = box
    H, W = size
    interpolation = cv2.INTER_AREA if H * W <= h * w else cv2.INTER_LINEAR
    out = np.stack([cv2.resize(np.ascontiguousarray(f[y0 : y0 + h, x0 : x0 + w]), (W, H), interpolation=interpolation)
                    for f in frames])  # (T, H, W, 3)
    return rearrange(torch.from_numpy(out), "t h w c -> t c h w").float() / 255


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The seed of sample ``index`` of ``epoch``: what it draws depends on nothing else (not on workers or ranks)."""
    digest = hashlib.blake2b(f"mvtrack-reader:{seed}:{epoch}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


class ReaderDataset(IterableDataset):
    """A dataset of ``items`` (scenes, clips, sequences) read from files; subclasses define ``load``.

    ``dataset[i]`` is sample ``i`` of the current epoch: its random choices (cameras, start frame, tracks) come from
    a generator seeded by ``(seed, epoch, i)`` alone. Iterating (what a ``DataLoader`` does) walks the items in an
    order shuffled per epoch and gives each rank and worker every ``count``-th of them (``worker_split``), so each
    reads only its own share. With ``skip_errors`` a sample whose files are malformed is skipped with a warning and
    counted in ``stats.skipped_samples`` (per process) instead of stopping the epoch.
    """

    def __init__(self, items: list, seed: int = 0, shuffle: bool = True, skip_errors: bool = False):
        if not items:
            raise ValueError(f"{type(self).__name__}: no samples found")
        self.items = items
        self.seed, self.shuffle, self.skip_errors = seed, shuffle, skip_errors
        self.epoch = 0
        self.stats = ReadStats()

    def __len__(self) -> int:
        return len(self.items)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, item, generator: torch.Generator) -> MultiViewClip:
        raise NotImplementedError

    def __getitem__(self, index: int) -> MultiViewClip:
        if not 0 <= index < len(self.items):
            raise IndexError(f"{type(self).__name__}: index {index} out of range for {len(self.items)} samples")
        clip = self.load(self.items[index], torch.Generator().manual_seed(sample_seed(self.seed, self.epoch, index)))
        clip.meta.update(index=index, epoch=self.epoch)
        return clip

    def order(self) -> list[int]:
        """Sample indices of this epoch, in reading order, before the split over ranks and workers."""
        if not self.shuffle:
            return list(range(len(self.items)))
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return torch.randperm(len(self.items), generator=g).tolist()

    def __iter__(self) -> Iterator[MultiViewClip]:
        index, count = worker_split()
        for i in self.order()[index::count]:
            try:
                clip = self[i]
            except (ValueError, FileNotFoundError) as e:
                if not self.skip_errors:
                    raise
                self.stats.skipped_samples += 1
                warnings.warn(f"skipping sample {i}: {e}", stacklevel=2)
                continue
            self.stats.clips += 1
            yield clip
