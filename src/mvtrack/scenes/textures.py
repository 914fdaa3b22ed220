"""Textures evaluated at object-local 3D points, so a surface point keeps its albedo as its object moves:
procedural solid textures (smooth tanh transitions, which bound aliasing at one sample per pixel) and photographs
(``photos.py``) laid on the surface."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .photos import NUM_PARAMS, photo_albedo, sample_photo

CHECKER, STRIPES, NOISE, BLOBS, PHOTO = range(5)
TEXTURE_NAMES = ("checker", "stripes", "noise", "blobs", "photo")
NUM_WAVES = 6  # sinusoids of the noise texture (the first one also makes the stripes)
NUM_BLOBS = 6
_SHARPNESS = 4.0  # tanh gain of checker and stripe edges: about a tenth of a cell is transition


@dataclass
class Textures:
    """Texture parameters of I surfaces (leading dims (B, I) once batched).

    kind: (..., ) long, one of CHECKER, STRIPES, NOISE, BLOBS, PHOTO.
    colors: (..., 2, 3) the two base colours in [0, 1] (a photo's tint: the first).
    offset: (..., 3) shift of local coordinates, so textures of equal shape differ.
    scale: (...) cell size of the checker, in scene units.
    waves: (..., NUM_WAVES, 4) wave vector (3, radians per unit) and phase (1).
    blobs: (..., NUM_BLOBS, 7) centre (3), colour (3), radius (1).
    photo: (..., NUM_PARAMS) a photographic texture's parameters (``photos.sample_photo``; zeros otherwise).
    """

    kind: torch.Tensor
    colors: torch.Tensor
    offset: torch.Tensor
    scale: torch.Tensor
    waves: torch.Tensor
    blobs: torch.Tensor
    photo: torch.Tensor

    def to(self, device) -> "Textures":
        return Textures(**{k: v.to(device) for k, v in vars(self).items()})

    @staticmethod
    def stack(items: list["Textures"], dim: int = 0) -> "Textures":
        return Textures(**{k: torch.stack([getattr(t, k) for t in items], dim) for k in vars(items[0])})


def random_colors(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` saturated random colours ``(n, 3)`` from random hue, saturation and value."""
    h = torch.rand(n, generator=generator) * 6
    s = 0.35 + 0.6 * torch.rand(n, generator=generator)
    v = 0.35 + 0.6 * torch.rand(n, generator=generator)
    k = (torch.tensor([5.0, 3.0, 1.0]) + h[:, None]) % 6
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def sample_texture(generator: torch.Generator, extent: float, kinds=range(4), z_offset: float | None = None,
                   photo: tuple[int, torch.Tensor] | None = None) -> Textures:
    """A random texture for a surface of size about ``extent`` scene units.

    ``z_offset`` pins the z shift (the ground plane z = 0 needs a checker cell centre there, not an edge).
    ``photo = (mapping, half extents (3,))``: a photographic texture laid on the surface that way (``photos``),
    after the procedural draws (so a clip's other surfaces do not depend on it).
    """
    kinds = list(kinds)
    kind = kinds[int(torch.randint(len(kinds), (1,), generator=generator))]
    scale = extent * (0.15 + 0.25 * torch.rand((), generator=generator))
    offset = torch.rand(3, generator=generator) * scale
    if z_offset is not None:
        offset[2] = z_offset * scale
    dirs = torch.randn(NUM_WAVES, 3, generator=generator)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    freq = (2 * math.pi / scale) * (0.4 + 0.8 * torch.rand(NUM_WAVES, 1, generator=generator))
    phase = 2 * math.pi * torch.rand(NUM_WAVES, 1, generator=generator)
    centres = (torch.rand(NUM_BLOBS, 3, generator=generator) - 0.5) * 2 * extent
    radius = extent * (0.15 + 0.3 * torch.rand(NUM_BLOBS, 1, generator=generator))
    blobs = torch.cat([centres, random_colors(NUM_BLOBS, generator), radius], -1)
    colors = random_colors(2, generator)
    params = torch.zeros(NUM_PARAMS)
    if photo is not None:
        kind = PHOTO
        params = sample_photo(generator, photo[0], photo[1], extent)
        colors[0] = 0.55 + 0.45 * torch.rand(3, generator=generator)  # a mild tint
    return Textures(
        kind=torch.tensor(kind),
        colors=colors,
        offset=offset,
        scale=scale,
        waves=torch.cat([dirs * freq, phase], -1),
        blobs=blobs,
        photo=params,
    )


def _smooth_sign(x: torch.Tensor) -> torch.Tensor:
    return torch.tanh(_SHARPNESS * torch.sin(x))


def evaluate_albedo(textures: Textures, b: int, i: int, points: torch.Tensor) -> torch.Tensor:
    """Albedo ``(X, 3)`` of surface ``i`` of scene ``b`` at its object-local ``points (X, 3)``.

    ``textures`` is batched (B, I); one surface at a time keeps every parameter a broadcast scalar.
    """
    kind = int(textures.kind[b, i])
    if kind == PHOTO:
        return photo_albedo(textures.photo[b, i], textures.colors[b, i, 0], points)
    p = points + textures.offset[b, i]
    c0, c1 = textures.colors[b, i]
    if kind == BLOBS:
        blobs = textures.blobs[b, i]  # (NUM_BLOBS, 7)
        d2 = ((p[:, None, :] - blobs[:, :3]) ** 2).sum(-1)  # (X, NUM_BLOBS)
        w = torch.exp(-d2 / (2 * blobs[:, 6] ** 2))
        w = w / w.sum(-1, keepdim=True).clamp_min(1.0)  # blobs cover at most all of the base colour
        return c0 * (1 - w.sum(-1, keepdim=True)) + w @ blobs[:, 3:6]
    if kind == CHECKER:
        u = p * (math.pi / textures.scale[b, i])
        pattern = _smooth_sign(u[:, 0]) * _smooth_sign(u[:, 1]) * _smooth_sign(u[:, 2])
    else:
        waves = textures.waves[b, i]  # (NUM_WAVES, 4)
        arg = p @ waves[:, :3].T + waves[:, 3]  # (X, NUM_WAVES)
        if kind == STRIPES:
            pattern = _smooth_sign(arg[:, 0])
        else:
            pattern = torch.tanh(1.5 * torch.sin(arg).sum(-1) / math.sqrt(NUM_WAVES))
    return c0 + (c1 - c0) * (0.5 + 0.5 * pattern)[:, None]
