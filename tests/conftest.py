import math

import pytest
import torch

from mvtrack.geometry import look_at, make_intrinsics


@pytest.fixture
def two_cameras():
    """Two OpenCV cameras looking at the origin from different places, with different intrinsics."""
    eyes = torch.tensor([[4.0, -3.0, 1.5], [3.0, 4.0, 2.5]], dtype=torch.float64)
    c2w = look_at(eyes, torch.zeros(2, 3, dtype=torch.float64))
    w2c = torch.linalg.inv(c2w)
    K = make_intrinsics(torch.tensor([90.0, 110.0]), torch.tensor([92.0, 105.0]),
                        torch.tensor([63.5, 60.2]), torch.tensor([47.5, 50.1])).double()
    return w2c, K


@pytest.fixture
def random_points():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5) * 2.0


def deg(x):
    return math.radians(x)
