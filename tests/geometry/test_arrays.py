import numpy as np
import torch

from mvtrack.geometry import fundamental_matrix, look_at, make_intrinsics, project, unproject_depth_map
from mvtrack.geometry.arrays import fundamental_matrix_array, project_array, unproject_depth_array


def _cameras(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    eye = torch.randn(n, 3, generator=g, dtype=torch.float64) * 2 + torch.tensor([0.0, -4.0, 1.0], dtype=torch.float64)
    w2c = torch.linalg.inv(look_at(eye, torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.3))
    K = make_intrinsics(torch.rand(n, generator=g) * 40 + 30, torch.rand(n, generator=g) * 40 + 30, 15.5, 11.5)
    return w2c, K.double()


def test_numpy_twins_agree_with_the_torch_functions():
    w2c, K = _cameras()
    w2c_b, K_b = _cameras(seed=1)
    np.testing.assert_allclose(fundamental_matrix_array(w2c.numpy(), K.numpy(), w2c_b.numpy(), K_b.numpy()),
                               fundamental_matrix(w2c, K, w2c_b, K_b).numpy(), atol=1e-12)
    depth = torch.rand(5, 24, 32, dtype=torch.float64) * 3 + 1
    world = unproject_depth_array(depth.numpy(), w2c.numpy(), K.numpy())
    np.testing.assert_allclose(world, unproject_depth_map(depth, w2c, K).numpy(), atol=1e-10)
    points = torch.from_numpy(world.reshape(5, -1, 3))
    for ours, theirs in zip(project_array(points.numpy(), w2c_b.numpy(), K_b.numpy()), project(points, w2c_b, K_b)):
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-9)
    # and each is right on its own: a pixel lifted with its depth projects back onto itself
    xy, z = project_array(world.reshape(5, -1, 3), w2c.numpy(), K.numpy())
    ys, xs = np.mgrid[0:24, 0:32]
    np.testing.assert_allclose(xy[0], np.stack([xs, ys], -1).reshape(-1, 2), atol=1e-9)
    np.testing.assert_allclose(z, depth.numpy().reshape(5, -1), atol=1e-9)
