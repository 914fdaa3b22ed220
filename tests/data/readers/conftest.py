"""Fixture pieces shared by the reader tests: cameras that look at a known point, and frames showing it as a blob."""

import numpy as np
import pytest
import torch

from mvtrack.geometry import look_at, project

TARGET = torch.tensor([[0.3, -0.2, 1.1]], dtype=torch.float64)  # the 3D point every frame shows as a blob


def _orbit(views: int, frames: int, radius: float = 4.0) -> torch.Tensor:
    """(V, T, 4, 4) float64 OpenCV w2c: views spread on a circle, drifting a little per frame, aimed beside TARGET so
    that it is seen away from the image centre (where errors of scale would hide)."""
    v = torch.arange(views, dtype=torch.float64)[:, None]
    t = torch.arange(frames, dtype=torch.float64)[None, :]
    angle = 0.6 * v + 0.04 * t
    eye = torch.stack([radius * angle.cos(), radius * angle.sin(), 1.5 + 0.1 * v + 0.02 * t], -1)  # (V, T, 3)
    aim = TARGET[0] + torch.stack([0.5 + 0.2 * v + 0 * t, -0.5 + 0.1 * t + 0 * v, -0.3 + 0.05 * t + 0 * v], -1)
    return torch.linalg.inv(look_at(eye, aim))


def _blob_frames(xy: torch.Tensor, height: int, width: int, sigma: float = 2.0) -> np.ndarray:
    """uint8 (..., H, W, 3) grey frames, black with a white Gaussian blob at each pixel position ``xy (..., 2)``."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    flat = xy.numpy().reshape(-1, 2)
    blobs = np.exp(-((x - flat[:, :1, None]) ** 2 + (y - flat[:, 1:, None]) ** 2) / (2 * sigma**2))  # (M, H, W)
    frames = np.repeat((blobs * 255).round().astype(np.uint8)[..., None], 3, -1)  # (M, H, W, 3)
    return frames.reshape(*xy.shape[:-1], height, width, 3)


def _centroids(video: torch.Tensor) -> torch.Tensor:
    """(..., 2) intensity centroid (x, y) of each frame of ``video (..., 3, H, W)``, pixel centres at integers."""
    grey = video.double().mean(-3)
    grey = (grey - 0.1 * grey.amax(dim=(-2, -1), keepdim=True)).clamp_min(0)
    H, W = grey.shape[-2:]
    ys, xs = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    mass = grey.sum(dim=(-2, -1))
    return torch.stack([(grey * xs).sum(dim=(-2, -1)) / mass, (grey * ys).sum(dim=(-2, -1)) / mass], -1)


@pytest.fixture
def orbit():
    return _orbit


@pytest.fixture
def blob_video():
    """``blob_video(w2c (..., 4, 4), K (..., 3, 3), H, W)``: uint8 (..., H, W, 3) frames showing TARGET as a blob,
    and its exact pixel positions (..., 2)."""

    def make(w2c, K, height, width):
        xy, _ = project(TARGET.expand(*w2c.shape[:-2], 1, 3), w2c, K)  # (..., 1, 2)
        xy = xy[..., 0, :]
        return _blob_frames(xy, height, width), xy

    return make


@pytest.fixture
def centroids():
    return _centroids


@pytest.fixture
def target():
    return TARGET
