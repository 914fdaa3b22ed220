"""Photographic textures for the engine: the photographs bundled with scikit-image and matplotlib (nothing is
downloaded), mapped onto surfaces with random crops, scales and colour jitter, so that training scenes carry the
kind of texture real footage has (edges at every scale, natural colour statistics) beside the procedural ones.

Sources (all shipped inside the installed packages):
    scikit-image ``skimage.data``: astronaut, chelsea (a cat), coffee, rocket, hubble_deep_field,
        immunohistochemistry, retina (colour); brick, camera, grass, gravel, moon, clock, coins, page, text (grey,
        given a random tint).
    matplotlib ``mpl-data/sample_data``: grace_hopper.jpg, Minduka_Present_Blue_Pack.png.
Each image is centre-cropped to a square and resized to ``ATLAS_SIZE``; the atlas is built on first use and cached.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

ATLAS_SIZE = 192
COLOUR = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
GREY = ("brick", "camera", "grass", "gravel", "moon", "clock", "coins", "page", "text")
MATPLOTLIB = ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")
# How a photo is laid on a surface: the faces of a box (planar, by the face's axis), the ground's plane, a sphere or
# the dome (longitude and latitude), a cylinder (around its axis and along it)
BOX_FACES, PLANE_XY, SPHERICAL, CYLINDRICAL = range(4)
NUM_PARAMS = 10  # index, u0, v0, span, world size, contrast, mapping, size x, y, z


def _square(image: np.ndarray) -> np.ndarray:
    import cv2

    image = image[..., :3] if image.ndim == 3 else np.repeat(image[..., None], 3, -1)
    h, w = image.shape[:2]
    s = min(h, w)
    y0, x0 = (h - s) // 2, (w - s) // 2
    image = np.ascontiguousarray(image[y0:y0 + s, x0:x0 + s])
    if image.dtype != np.uint8:
        image = (np.clip(image, 0, 1) * 255).astype(np.uint8) if image.max() <= 1 else image.astype(np.uint8)
    return cv2.resize(image, (ATLAS_SIZE, ATLAS_SIZE), interpolation=cv2.INTER_AREA)


@functools.lru_cache(maxsize=1)
def atlas() -> torch.Tensor:
    """The photographs, (N, 3, ATLAS_SIZE, ATLAS_SIZE) float32 in [0, 1]; grey ones are repeated over channels."""
    try:
        from skimage import data
    except ImportError as e:  # pragma: no cover - a dependency
        raise ImportError("photographic textures need scikit-image (pip install scikit-image)") from e
    import matplotlib.cbook as cbook
    from PIL import Image

    images = [_square(getattr(data, name)()) for name in COLOUR + GREY]
    for name in MATPLOTLIB:
        with Image.open(cbook.get_sample_data(name, asfileobj=False)) as im:
            images.append(_square(np.asarray(im.convert("RGB"))))
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def num_photos() -> int:
    return len(COLOUR) + len(GREY) + len(MATPLOTLIB)


def sample_photo(generator: torch.Generator, mapping: int, size: torch.Tensor, extent: float) -> torch.Tensor:
    """Parameters ``(NUM_PARAMS,)`` of a random photographic texture: which photo, a random square crop of it
    (origin and span, in [0, 1] of the photo), the scene units that crop covers (``extent`` times 0.5 to 1.5), a
    contrast in [0.6, 1.3], the ``mapping`` and the surface's half extents ``size (3,)`` (box faces)."""
    g = generator
    index = float(torch.randint(num_photos(), (1,), generator=g))
    span = 0.35 + 0.65 * float(torch.rand((), generator=g))
    u0, v0 = (float(x) for x in torch.rand(2, generator=g) * (1 - span))
    world = extent * (0.5 + float(torch.rand((), generator=g)))
    contrast = 0.6 + 0.7 * float(torch.rand((), generator=g))
    return torch.tensor([index, u0, v0, span, world, contrast, float(mapping), *size.tolist()])


def surface_coordinates(points: torch.Tensor, mapping: int, size: torch.Tensor) -> torch.Tensor:
    """(X, 2) scene-unit coordinates on a surface of its object-local ``points (X, 3)``."""
    if mapping == PLANE_XY:
        return points[:, :2]
    if mapping == BOX_FACES:
        q = (points / size.clamp_min(1e-6)).abs()
        axis = q.argmax(-1)  # the face each point lies on
        others = torch.tensor([[1, 2], [0, 2], [0, 1]], device=points.device)[axis]  # (X, 2)
        shifted = points + size  # positive coordinates from the box's corner
        return shifted.gather(1, others) + axis[:, None].float() * 7.3  # faces offset from each other in the photo
    radius = points.norm(dim=-1).clamp_min(1e-6)
    longitude = torch.atan2(points[:, 1], points[:, 0])
    if mapping == SPHERICAL:
        latitude = torch.asin((points[:, 2] / radius).clamp(-1, 1))
        return torch.stack([longitude, latitude], -1) * radius[:, None]
    rho = points[:, :2].norm(dim=-1)
    return torch.stack([longitude * rho, points[:, 2]], -1)  # CYLINDRICAL


def photo_albedo(params: torch.Tensor, tint: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Albedo ``(X, 3)`` of a photographic texture at object-local ``points (X, 3)``.

    Args:
        params: (NUM_PARAMS,) from ``sample_photo``; tint: (3,) colour in [0, 1] multiplying the photo (normalised
            to a mean gain of 1.1, so a tint changes hue more than brightness).
    """
    index, u0, v0, span, world, contrast, mapping = (float(x) for x in params[:7])
    uv = surface_coordinates(points, int(mapping), params[7:10].to(points))
    # the crop is laid once every `world` scene units and mirrored beyond it (no seams)
    period = (uv / world) % 2
    period = torch.where(period > 1, 2 - period, period)  # [0, 1], mirrored
    grid = torch.stack([u0 + span * period[:, 0], v0 + span * period[:, 1]], -1) * 2 - 1  # [-1, 1]
    image = atlas()[int(index)].to(points.device)[None]  # (1, 3, S, S)
    colour = F.grid_sample(image, grid[None, :, None], mode="bilinear", padding_mode="border",
                           align_corners=False)[0, :, :, 0].T  # (X, 3)
    mean = image.mean((2, 3))  # (1, 3): the photo's, so a point's colour does not depend on which others are seen
    colour = (colour - mean) * contrast + mean
    gain = tint.to(points) * (1.1 / tint.mean().clamp_min(1e-3))
    return (colour * gain).clamp(0, 1)

