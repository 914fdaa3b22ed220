import numpy as np
import torch

from mvtrack.geometry import plucker_rays, project, w2c_to_c2w


def cameractrl_ray_condition(K_corner, c2w, H, W):
    """CameraCtrl's ``ray_condition`` written out in numpy from its stated convention (METRICS.md):
    rays through (i + 0.5, j + 0.5) with corner-based pixel intrinsics, d = R normalise(K^-1 p), [o x d, d]."""
    fx, fy, cx, cy = K_corner[0, 0], K_corner[1, 1], K_corner[0, 2], K_corner[1, 2]
    j, i = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    i, j = i + 0.5, j + 0.5
    d = np.stack([(i - cx) / fx, (j - cy) / fy, np.ones_like(i)], -1)
    d = d / np.linalg.norm(d, axis=-1, keepdims=True)
    d = d @ c2w[:3, :3].T
    o = np.broadcast_to(c2w[:3, 3], d.shape)
    return np.concatenate([np.cross(o, d), d], -1).transpose(2, 0, 1)  # (6, H, W)


def test_plucker_matches_cameractrl_after_half_pixel_shift(two_cameras):
    w2c, K = two_cameras
    H, W = 12, 16
    ours = plucker_rays(w2c[None, :, None], K[None, :, None], H, W)  # (1, 2, 1, 6, H, W)
    assert ours.shape == (1, 2, 1, 6, H, W)
    for v in range(2):
        K_corner = K[v].numpy().copy()
        K_corner[0, 2] += 0.5
        K_corner[1, 2] += 0.5
        ref = cameractrl_ray_condition(K_corner, w2c_to_c2w(w2c[v]).numpy(), H, W)
        np.testing.assert_allclose(ours[0, v, 0].numpy(), ref, atol=1e-12)


def test_plucker_rays_pass_through_projected_points(two_cameras):
    # A point on the ray of pixel (x, y) projects back to (x, y); the moment o x d is the same for every point.
    w2c, K = two_cameras
    rays = plucker_rays(w2c[0], K[0], 8, 8)  # (6, 8, 8)
    d = rays[3:, 5, 2]
    o = torch.linalg.inv(w2c[0])[:3, 3]
    p = o + 2.5 * d
    xy, _ = project(p[None], w2c[0], K[0])
    torch.testing.assert_close(xy[0], torch.tensor([2.0, 5.0], dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.cross(p, d), rays[:3, 5, 2])
