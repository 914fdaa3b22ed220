import pytest
import torch

from mvtrack.geometry import axis_angle_to_matrix, c2w_to_w2c, look_at, make_intrinsics, pixel_grid, pixel_rays
from mvtrack.scenes import Scene, SynthConfig, cast, sample_scene
from mvtrack.scenes.scene import BOX, CYLINDER, SPHERE


def _one_object_scene(kind, size):
    """The engine's sky and ground plus one turned primitive at (0.3, -0.2, 1.2), seen by one camera."""
    base, _ = sample_scene(SynthConfig(views=1, frames=1, height=40, width=40, min_objects=1, max_objects=1,
                                       camera_motions=("static",)), torch.Generator().manual_seed(0))
    R = axis_angle_to_matrix(torch.tensor([0.3, 1.0, 0.5]), torch.tensor(0.8))
    c2w = look_at(torch.tensor([4.0, 2.0, 2.5]), torch.tensor([0.3, -0.2, 1.2]))
    return Scene(
        shape=torch.tensor([[0, 1, kind]]), size=torch.cat([base.size[:, :2], torch.tensor(size).reshape(1, 1, 3)], 1),
        rotation=torch.cat([base.rotation[:, :2], R.reshape(1, 1, 1, 3, 3)], 1),
        center=torch.cat([base.center[:, :2], torch.tensor([[[[0.3, -0.2, 1.2]]]])], 1),
        textures=base.textures, light=base.light, ambient=base.ambient,
        w2c=c2w_to_w2c(c2w).reshape(1, 1, 1, 4, 4), K=make_intrinsics(80.0, 80.0, 19.5, 19.5).reshape(1, 1, 1, 3, 3),
        height=40, width=40,
    )


def _inside(kind, local, size):
    q = local / torch.tensor(size)
    if kind == SPHERE:
        return q.norm(dim=-1) < 1
    if kind == BOX:
        return q.abs().amax(-1) < 1
    return (local[..., :2].norm(dim=-1) < size[0]) & (local[..., 2].abs() < size[2])


@pytest.mark.parametrize("kind,size", [(SPHERE, [0.7, 0.7, 0.7]), (BOX, [0.6, 0.3, 0.45]), (CYLINDER, [0.4, 0.4, 0.6])])
def test_primitive_hits_are_first_surface_points(kind, size):
    scene = _one_object_scene(kind, size)
    xy = pixel_grid(40, 40).reshape(1, 1, -1, 2)
    origins, dirs = pixel_rays(xy, scene.w2c[:, 0], scene.K[:, 0], normalize=False)
    hits = cast(scene, origins, dirs, torch.zeros(1, 1, dtype=torch.long))
    on = hits.instance[0, 0] == 2
    assert 100 < on.sum() < 1500  # the object covers part of the image
    R, c = scene.rotation[0, 2, 0], scene.center[0, 2, 0]
    # Points along every ray, from the camera to just before its hit: none lies inside the object.
    s = torch.linspace(0.0, 0.999, 400)[:, None] * hits.depth[0, 0][None]  # (400, P)
    pts = origins[0, 0] + s[..., None] * dirs[0, 0][None]  # (400, P, 3)
    local = (pts - c) @ R
    assert not _inside(kind, local, size).any()
    # Hit points lie on the surface: the local point is on the boundary of the inside test.
    lp = hits.local[0, 0][on]
    q = lp / torch.tensor(size)
    if kind == SPHERE:
        torch.testing.assert_close(q.norm(dim=-1), torch.ones(len(q)), atol=1e-4, rtol=0)
    elif kind == BOX:
        torch.testing.assert_close(q.abs().amax(-1), torch.ones(len(q)), atol=1e-4, rtol=0)
    else:
        radial = (lp[:, :2].norm(dim=-1) / size[0] - 1).abs()
        cap = (lp[:, 2].abs() / size[2] - 1).abs()
        assert torch.minimum(radial, cap).max() < 1e-4
    # Normals face the camera at every hit.
    assert ((hits.normal[0, 0][on] * dirs[0, 0][on]).sum(-1) < 0).all()
    # Just beyond the hit, the ray is inside (it entered, not grazed), for most rays.
    beyond = origins[0, 0] + (hits.depth[0, 0][on] + 1e-3)[:, None] * dirs[0, 0][on]
    assert _inside(kind, (beyond - c) @ R, size).float().mean() > 0.95
