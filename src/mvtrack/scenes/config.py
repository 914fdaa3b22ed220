"""Configuration of the synthetic 4D multi-view scene engine."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CAMERA_MOTIONS = ("static", "orbit", "arc", "dolly", "pan", "tilt", "random")
BASELINES = ("small", "wide", "mixed")
# seed streams of clip_seed: training draws from train; val chooses checkpoints; test is the held-out split
SPLITS = ("train", "val", "test")
HELD_OUT = ("test", "val")
LAYOUTS = ("objects", "room")  # primitives on a ground under a sky dome; a RealEstate10K-like room (rooms.py)
ROOM_VIEWS = ("interleaved", "ahead", "offset")


# Largest values of a clip's sizes (those of the training config's data section; tracks: what a clip can carry)
SYNTH_LIMITS = {"views": 64, "frames": 4096, "height": 8192, "width": 8192, "num_tracks": 65536}


@dataclass
class SynthConfig:
    views: int = 4  # cameras per clip
    frames: int = 16
    height: int = 128
    width: int = 128
    num_tracks: int = 256  # half on objects, half on the background (ground and sky dome)
    query_view: int | None = None  # draw track queries from this view only (Track2View's source tracks); None: all
    min_objects: int = 2
    max_objects: int = 8
    dynamic_prob: float = 0.7  # share of scenes whose objects move; the rest are static (only cameras move)
    moving_prob: float = 0.75  # in a dynamic scene, the chance that each object moves
    baseline: str = "mixed"  # small: 3-12 degrees between neighbouring views; wide: 25-70 degrees
    camera_motions: tuple[str, ...] = CAMERA_MOTIONS
    fov_degrees: tuple[float, float] = (40.0, 65.0)  # horizontal field of view range
    dome_radius: float = 40.0  # the textured sky sphere that bounds the world
    layouts: tuple[str, ...] = ("objects",)  # drawn uniformly per clip
    photo_prob: float = 0.0  # share of surfaces (ground, objects, room surfaces) textured with a photograph
    room_views: tuple[str, ...] = ROOM_VIEWS  # what the other views of a room clip are (rooms.py)
    extra: dict = field(default_factory=dict)  # free-form notes carried into each clip's metadata

    def __post_init__(self):
        for name, hi in SYNTH_LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise ValueError(f"SynthConfig.{name}: expected an integer in [1, {hi}], got {value!r}")
        if self.query_view is not None and not 0 <= self.query_view < self.views:
            raise ValueError(f"SynthConfig.query_view: expected None or a view index in [0, {self.views}), got "
                             f"{self.query_view!r}")
        if not 1 <= self.min_objects <= self.max_objects <= 8:
            raise ValueError(
                f"SynthConfig.min_objects/max_objects: expected 1 <= min <= max <= 8, got {self.min_objects}, {self.max_objects}"
            )
        if self.baseline not in BASELINES:
            raise ValueError(f"SynthConfig.baseline: expected one of {BASELINES}, got {self.baseline!r}")
        self.camera_motions = tuple(self.camera_motions)
        unknown = set(self.camera_motions) - set(CAMERA_MOTIONS)
        if unknown or not self.camera_motions:
            raise ValueError(f"SynthConfig.camera_motions: expected a non-empty subset of {CAMERA_MOTIONS}, got {self.camera_motions}")
        for name in ("dynamic_prob", "moving_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"SynthConfig.{name}: expected a probability in [0, 1], got {getattr(self, name)}")
        self.layouts, self.room_views = tuple(self.layouts), tuple(self.room_views)
        if not self.layouts or set(self.layouts) - set(LAYOUTS):
            raise ValueError(f"SynthConfig.layouts: expected a non-empty subset of {LAYOUTS}, got {self.layouts}")
        if not self.room_views or set(self.room_views) - set(ROOM_VIEWS):
            raise ValueError(f"SynthConfig.room_views: expected a non-empty subset of {ROOM_VIEWS}, got "
                             f"{self.room_views}")
        if not 0.0 <= self.photo_prob <= 1.0:
            raise ValueError(f"SynthConfig.photo_prob: expected a probability in [0, 1], got {self.photo_prob}")
        lo, hi = self.fov_degrees
        if not 5.0 <= lo <= hi <= 150.0:
            raise ValueError(f"SynthConfig.fov_degrees: expected 5 <= min <= max <= 150, got {self.fov_degrees}")

    def to_dict(self) -> dict:
        return asdict(self)
