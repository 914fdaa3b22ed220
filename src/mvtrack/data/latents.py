"""Cached latents: a clip's VAE latents (and its prompt's text embeddings) stored once, so that training reads them
instead of running the VAE (and UMT5) on every batch.

A ``LatentClip`` keeps everything of its ``MultiViewClip`` that training reads except the frames: cameras per video
frame, tracks, optionally depth and 3D tracks, and in ``meta`` the video size and the VAE it was encoded with
(``meta["latents"]``). It is stored in the same WebDataset tar shards (members ``KEY.FIELD.npy`` + ``KEY.json`` with
``"kind": "latents"``); ``iter_shard`` reads both kinds. Text embeddings keep only the prompt's own tokens (Wan zeroes
the rest), ``text_empty`` is the empty prompt's (what a dropped caption trains with).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .clip import check_schema

# name -> (shape in axis letters, dtype kind) of one unbatched latent clip; T counts video frames, F latent frames
LATENT_SCHEMA = {
    "latents": ("V F C h w", "float"),
    "w2c": ("V T 4 4", "float"),
    "K": ("V T 3 3", "float"),
    "tracks": ("V T N 2", "float"),
    "visible": ("V T N", "bool"),
    "depth": ("V T H W", "float"),
    "tracks3d": ("T N 3", "float"),
    "text": ("L D", "float"),
    "text_empty": ("E D", "float"),
}
LATENT_OPTIONAL = ("depth", "tracks3d", "text", "text_empty")
KIND = "latents"


@dataclass
class LatentClip:
    """One clip's latents and what training reads beside them.

    Unbatched shapes (``collate_latents`` adds a leading B to every tensor; text rows are zero-padded to the longest):
        latents: (V, F, C, h, w) normalised VAE latents (``WanVAECodec.encode``).
        w2c, K, tracks, visible, depth, tracks3d: as in ``MultiViewClip`` (T video frames, H x W pixels).
        text: (L, D) the caption's embeddings, its own tokens only; text_empty: (E, D) the empty prompt's; or None.
        meta: the clip's meta with ``size`` [H, W] and ``latents`` (the VAE's fingerprint, see ``codec_fingerprint``).
    """

    latents: torch.Tensor
    w2c: torch.Tensor
    K: torch.Tensor
    tracks: torch.Tensor
    visible: torch.Tensor
    depth: torch.Tensor | None = None
    tracks3d: torch.Tensor | None = None
    text: torch.Tensor | None = None
    text_empty: torch.Tensor | None = None
    meta: dict | list = field(default_factory=dict)

    def __post_init__(self):
        check_schema(self, LATENT_SCHEMA, LATENT_OPTIONAL, self.latents.dim() == 6, own_rows=("text", "text_empty"))
        metas = self.meta if isinstance(self.meta, list) else [self.meta]
        if not all(isinstance(m, dict) and isinstance(m.get("size"), list) and len(m["size"]) == 2 for m in metas):
            raise ValueError("LatentClip.meta: expected the video size as meta['size'] = [H, W]")

    @property
    def batched(self) -> bool:
        return self.latents.dim() == 6

    @property
    def num_views(self) -> int:
        return self.latents.shape[-5]

    @property
    def num_frames(self) -> int:
        """Video frames (the cameras'), not latent frames."""
        return self.w2c.shape[-3]

    @property
    def num_tracks(self) -> int:
        return self.tracks.shape[-2]

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) of the video the latents encode."""
        meta = self.meta[0] if isinstance(self.meta, list) else self.meta
        return tuple(meta["size"])

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k) for k in LATENT_SCHEMA if getattr(self, k) is not None}

    def to(self, device) -> LatentClip:
        return LatentClip(**{k: v.to(device) for k, v in self.tensors().items()}, meta=self.meta)


def codec_fingerprint(codec) -> dict:
    """What must match between the VAE that encoded cached latents and the one a run trains with."""
    cfg = codec.vae.config
    return {"z_dim": int(cfg.z_dim), "spatial": int(codec.spatial_factor), "temporal": int(codec.temporal_factor),
            "latents_mean": [float(x) for x in cfg.latents_mean], "latents_std": [float(x) for x in cfg.latents_std]}


def collate_latents(clips: list[LatentClip]) -> LatentClip:
    """Stack unbatched latent clips; text rows are zero-padded to the longest of the batch."""
    if not clips or any(c.batched for c in clips):
        raise ValueError("collate_latents: expected one or more unbatched latent clips")
    out = {}
    for name in LATENT_SCHEMA:
        values = [getattr(c, name) for c in clips]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise ValueError(f"collate_latents: field {name} is missing in some clips")
        if name in ("text", "text_empty"):
            rows = max(v.shape[0] for v in values)
            values = [torch.cat([v, v.new_zeros(rows - v.shape[0], v.shape[1])]) for v in values]
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) > 1:
            raise ValueError(f"collate_latents: field {name} has different shapes {sorted(shapes)}")
        out[name] = torch.stack(values)
    return LatentClip(**out, meta=[c.meta for c in clips])


def crop_latents(clip: LatentClip, views: int, frames: int, temporal: int) -> LatentClip:
    """The first ``views`` views and ``frames`` video frames of a batched latent clip (latent frames
    ``(frames - 1) / temporal + 1``: a causal VAE's first latent frames encode the first video frames alone)."""
    if (frames - 1) % temporal:
        raise ValueError(f"data.frames: cached latents hold 1 + {temporal}k video frames, got {frames}")
    F = (frames - 1) // temporal + 1
    return LatentClip(
        latents=clip.latents[:, :views, :F], w2c=clip.w2c[:, :views, :frames], K=clip.K[:, :views, :frames],
        tracks=clip.tracks[:, :views, :frames], visible=clip.visible[:, :views, :frames],
        depth=None if clip.depth is None else clip.depth[:, :views, :frames],
        tracks3d=None if clip.tracks3d is None else clip.tracks3d[:, :frames],
        text=clip.text, text_empty=clip.text_empty, meta=clip.meta)
