"""MultiViewClip: the one sample format of mvtrack, with its checks and its collate function."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

# name -> (shape in axis letters, dtype kind) for one unbatched clip; a batch adds a leading B.
SCHEMA = {
    "video": ("V T 3 H W", "float"),
    "depth": ("V T H W", "float"),
    "w2c": ("V T 4 4", "float"),
    "K": ("V T 3 3", "float"),
    "tracks": ("V T N 2", "float"),
    "visible": ("V T N", "bool"),
    "tracks3d": ("T N 3", "float"),
    "queries": ("N 4", "float"),
    "track_instance": ("N", "int"),
}
OPTIONAL = ("depth", "tracks3d", "queries", "track_instance")


@dataclass
class MultiViewClip:
    """V synchronised views of T frames with cameras and multi-view point tracks.

    Unbatched shapes (``collate`` adds a leading B to every tensor):
        video: (V, T, 3, H, W) float in [0, 1].
        depth: (V, T, H, W) z-depth in the camera frame, or None.
        w2c: (V, T, 4, 4) OpenCV world-to-camera; K: (V, T, 3, 3) pixel intrinsics.
        tracks: (V, T, N, 2) pixel (x, y) of track n in view v at frame t, top-left pixel centre at (0, 0).
        visible: (V, T, N) bool, True where the point is in the image and unoccluded.
        tracks3d: (T, N, 3) world positions, or None.
        queries: (N, 4) the (v, t, x, y) each track was sampled at (visible there), or None.
        track_instance: (N,) long, the surface each track lies on (0 sky, 1 ground, 2... objects), or None.
        meta: JSON-serialisable description (a list of them once batched).
    """

    video: torch.Tensor
    w2c: torch.Tensor
    K: torch.Tensor
    tracks: torch.Tensor
    visible: torch.Tensor
    depth: torch.Tensor | None = None
    tracks3d: torch.Tensor | None = None
    queries: torch.Tensor | None = None
    track_instance: torch.Tensor | None = None
    meta: dict | list = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    @property
    def batched(self) -> bool:
        return self.video.dim() == 6

    @property
    def num_views(self) -> int:
        return self.video.shape[-5]

    @property
    def num_frames(self) -> int:
        return self.video.shape[-4]

    @property
    def num_tracks(self) -> int:
        return self.tracks.shape[-2]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W)."""
        return tuple(self.video.shape[-2:])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in SCHEMA if getattr(self, k) is not None}

    def validate(self) -> None:
        """Check every tensor's shape and dtype against SCHEMA; raise ``ValueError`` naming the field."""
        if self.video.dim() not in (5, 6):
            raise ValueError(f"MultiViewClip.video: expected (V, T, 3, H, W) or (B, V, T, 3, H, W), got {tuple(self.video.shape)}")
        check_schema(self, SCHEMA, OPTIONAL, batched=self.video.dim() == 6)
        for name in ("w2c", "K"):
            if not torch.isfinite(getattr(self, name)).all():
                raise ValueError(f"MultiViewClip.{name}: contains NaN or inf")

    def to(self, device) -> "MultiViewClip":
        return MultiViewClip(**{k: v.to(device) for k, v in self.tensors().items()}, meta=self.meta)

    def __getitem__(self, index: int) -> "MultiViewClip":
        """Clip ``index`` of a batch, unbatched."""
        if not self.batched:
            raise TypeError("MultiViewClip: indexing needs a batched clip")
        meta = self.meta[index] if isinstance(self.meta, list) else self.meta
        return MultiViewClip(**{k: v[index] for k, v in self.tensors().items()}, meta=meta)

    def unbatch(self) -> list["MultiViewClip"]:
        return [self[i] for i in range(self.video.shape[0])]


def check_schema(clip, schema: dict, optional: tuple, batched: bool, own_rows: tuple = ()) -> None:
    """Check each field of ``clip`` named in ``schema`` (name -> (axis letters, dtype kind)): present unless
    ``optional``, its shape (letters shared across fields agree; digits are exact; a leading B when ``batched``) and
    its dtype kind; ``ValueError`` naming ``Class.field`` otherwise. Fields in ``own_rows`` have a first axis of their
    own per field (e.g. text tokens) and share only the last one."""
    owner = type(clip).__name__
    dims: dict[str, int] = {}
    for name, (axes, kind) in schema.items():
        value = getattr(clip, name)
        if value is None:
            if name not in optional:
                raise ValueError(f"{owner}.{name}: required")
            continue
        letters = ("B",) * batched + tuple(axes.split())
        if name in own_rows:
            letters = letters[:-2] + (f"{name}_rows", letters[-1])
        if not isinstance(value, torch.Tensor) or value.dim() != len(letters):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{owner}.{name}: expected ({', '.join(letters)}), got {got}")
        for letter, n in zip(letters, value.shape):
            expected = int(letter) if letter.isdigit() else dims.setdefault(letter, n)
            if n != expected:
                raise ValueError(
                    f"{owner}.{name}: expected ({', '.join(letters)}) with {letter} = {expected}, got {tuple(value.shape)}"
                )
        ok = {"float": value.is_floating_point(), "bool": value.dtype == torch.bool,
              "int": not value.is_floating_point() and value.dtype != torch.bool}[kind]
        if not ok:
            raise ValueError(f"{owner}.{name}: expected a {kind} tensor, got {value.dtype}")


def collate(clips: list[MultiViewClip]) -> MultiViewClip:
    """Stack unbatched clips into one batched clip (``collate_fn`` for ``torch.utils.data.DataLoader``)."""
    if not clips:
        raise ValueError("collate: expected at least one clip")
    if any(c.batched for c in clips):
        raise ValueError("collate: expected unbatched clips")
    out = {}
    for name in SCHEMA:
        values = [getattr(c, name) for c in clips]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise ValueError(f"collate: field {name} is missing in some clips")
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"collate: field {name} has different shapes {sorted(shapes)}; resize or resample first")
        out[name] = torch.stack(values)
    return MultiViewClip(**out, meta=[c.meta for c in clips])
