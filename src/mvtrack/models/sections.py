"""The model sections of a training config, typed: what ``track2view.conditioner`` and ``cvd.epipolar`` hold is what
``MultiViewTransformer(track_conditioner=..., epipolar=...)`` (and ``add_track_conditioner`` / ``add_epipolar``)
accept (the object, or its mapping, read through the object), checked when the config is read instead of after the
model loads. ``tests/models/test_sections.py`` keeps the fields equal to the constructors' keyword arguments."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

from mvtrack.config import TINY, check_fields, checked, choice, items, ranged

from .epipolar import BACKENDS, COINCIDENT, MODES

_BLOCKS = items(lambda b: isinstance(b, int) and not isinstance(b, bool) and b >= 0, "block indices >= 0")


@dataclass
class TrackConditionerConfig:
    """``TrackConditioner``'s keyword arguments beyond the backbone's sizes (see its docstring for each)."""

    CONFIG_PATH: ClassVar[str] = "track2view.conditioner"
    blocks: list = checked(check=_BLOCKS, factory=lambda: [0])  # blocks that receive the condition
    width: int = ranged(128, 1)  # the per-track transformer's width
    layers: int = ranged(2, 1)
    heads: int = ranged(4, 1)
    bands: int = ranged(6, 1)  # Fourier bands of the target position and depth
    tokens: bool = True  # the token path (source tokens carried along the tracks)
    pixels: bool = True  # the pixel path (source pixels splatted along the tracks)
    skip: bool = False  # the gated geometric skip (needs pixels)
    max_token_tracks: int | None = ranged(None, 1, what="an integer >= 1 or null")
    frame_positions: bool = True  # Fourier features of the frame index in each track's sequence
    skip_init: float = 0.0  # the skip gate's starting value (0: closed, the model starts as it was)
    skip_fixed: bool = False  # hold the gate at skip_init instead of learning it
    pixel_head: int = ranged(0, 0)  # width of a zero-initialised head on the skip's pixels (0: none)
    hole_fill: bool = False  # the splat's holes filled from around them, added to x_0 by a gate from 0

    def __post_init__(self):
        check_fields(self)

    def kwargs(self) -> dict:
        return asdict(self)


@dataclass
class EpipolarConfig:
    """CVD's epipolar attention, ``MultiViewTransformer(epipolar=...)``'s keyword arguments (``models.epipolar``)."""

    CONFIG_PATH: ClassVar[str] = "cvd.epipolar"
    mode: str = choice("module", MODES)  # a zero-initialised cross-view module, or the blocks' own attention masked
    blocks: list | None = checked(None, _BLOCKS)  # None: every other block
    band: float = ranged(1.5, 0.0, what="a number >= 0 (tokens)")  # half-width of the band around epipolar lines
    decay: float | None = ranged(None, TINY, what="a number > 0 or null (hard band)")  # CVD's soft bias
    cross_frames: bool = False  # also attend to other frames' epipolar bands
    coincident: str = choice("homography", COINCIDENT)  # views sharing a centre: homography band or full attention
    backend: str = choice("auto", BACKENDS)  # dense SDPA masks or FlexAttention block masks (auto: flex on CUDA)

    def __post_init__(self):
        check_fields(self)

    def kwargs(self) -> dict:
        return asdict(self)
