import cv2
import numpy as np
import pytest
import torch

from mvtrack.geometry import camera_centers, epipolar_distance, fundamental_matrix, pixel_rays
from mvtrack.scenes import Scene, SynthConfig, cast, clip_seed, render_clips, sample_scene, shade
from mvtrack.scenes.raycast import _local_normals

CFG = SynthConfig(views=3, frames=6, height=48, width=64, num_tracks=128)
SEEDS = [clip_seed(7, i) for i in range(3)]


@pytest.fixture(scope="module")
def rendered():
    clips = render_clips(CFG, SEEDS)
    scene = Scene.cat([sample_scene(CFG, torch.Generator().manual_seed(s))[0] for s in SEEDS])
    return clips, scene


def _bilinear(image, xy):
    # image (3, H, W), xy (K, 2) in our pixel convention -> (K, 3)
    H, W = image.shape[-2:]
    grid = torch.stack([(xy[:, 0] + 0.5) / W * 2 - 1, (xy[:, 1] + 0.5) / H * 2 - 1], -1)
    return torch.nn.functional.grid_sample(image[None], grid[None, None], align_corners=False, padding_mode="border")[0, :, 0].T


def _surface_colour(sub, clips, b, t, n):
    """Colour of track n's 3D point at frame t, computed from its world position and its instance's pose alone.

    ``sub`` is clip b's scene on its own (batch of 1)."""
    inst = int(clips.track_instance[b, n])
    p = clips.tracks3d[b, t, n]
    R, c = sub.rotation[0, inst, t], sub.center[0, inst, t]
    local = R.T @ (p - c)
    normal = R @ _local_normals(int(sub.shape[0, inst]), local[None], sub.size[0, inst])[0]
    return shade(sub, torch.tensor([[inst]]), local[None, None], normal[None, None])[0, 0]


def test_clip_shapes_and_ranges(rendered):
    clips, _ = rendered
    B, V, T, N, H, W = 3, 3, 6, 128, 48, 64
    assert clips.video.shape == (B, V, T, 3, H, W) and clips.depth.shape == (B, V, T, H, W)
    assert clips.tracks.shape == (B, V, T, N, 2) and clips.visible.shape == (B, V, T, N)
    assert clips.tracks3d.shape == (B, T, N, 3) and clips.queries.shape == (B, N, 4)
    assert 0 <= clips.video.min() and clips.video.max() <= 1 and (clips.depth > 0).all()
    assert 0.2 < clips.visible.float().mean() < 1.0  # neither trivially visible nor empty


def test_queries_are_visible_points_of_their_tracks(rendered):
    clips, _ = rendered
    q = clips.queries.long()
    b, n = torch.arange(3)[:, None], torch.arange(128)[None]
    assert clips.visible[b, q[..., 0], q[..., 1], n].all()
    torch.testing.assert_close(clips.tracks[b, q[..., 0], q[..., 1], n], clips.queries[..., 2:], atol=1e-3, rtol=0)


def test_tracks_are_balanced_between_objects_and_background(rendered):
    clips, _ = rendered
    on_objects = (clips.track_instance >= 2).float().mean(1)
    assert torch.allclose(on_objects, torch.full((3,), 0.5))


def test_colour_at_visible_tracks_equals_surface_colour(rendered):
    clips, scene = rendered
    exact_err, image_err, centre_err = [], [], []
    for b in range(3):
        sub = Scene.cat([sample_scene(CFG, torch.Generator().manual_seed(SEEDS[b]))[0]])
        for v in range(3):
            for t in range(6):
                ns = clips.visible[b, v, t].nonzero()[:, 0]
                xy = clips.tracks[b, v, t, ns]
                # Exact: a ray through the projected point hits a surface of exactly the track point's colour.
                origins, dirs = pixel_rays(xy[None, None], sub.w2c[:, v, t][:, None], sub.K[:, v, t][:, None], normalize=False)
                hits = cast(sub, origins, dirs, torch.tensor([[t]]))
                ray_colour = shade(sub, hits.instance, hits.local, hits.normal)[0, 0]
                if t % 2 == 0:  # the independent path runs per point; half the frames suffice
                    surface = torch.stack([_surface_colour(sub, clips, b, t, int(n)) for n in ns[:10]])
                    exact_err.append((ray_colour[:10] - surface).abs().amax(-1))
                # The rendered image: equal at pixel centres, up to texture interpolation between them.
                image_err.append((_bilinear(clips.video[b, v, t], xy) - ray_colour).abs().amax(-1))
                near = (xy - xy.round()).abs().amax(-1) < 0.1
                r = xy[near].round().long()
                pixel = clips.video[b, v, t][:, r[:, 1], r[:, 0]].T
                centre_err.append((pixel - ray_colour[near]).abs().amax(-1))
    exact_err, image_err, centre_err = torch.cat(exact_err), torch.cat(image_err), torch.cat(centre_err)
    assert len(exact_err) > 150 and len(centre_err) > 50
    assert exact_err.max() < 5e-3 and exact_err.median() < 1e-4  # float32 rounding on the sharpest textures
    assert centre_err.median() < 0.01 and torch.quantile(centre_err, 0.9) < 0.05
    assert image_err.median() < 0.1


def test_occluded_points_have_a_nearer_surface(rendered):
    clips, scene = rendered
    B, V, T = 3, 3, 6
    z = torch.einsum("bvtij,btnj->bvtni", clips.w2c[..., :3, :3], clips.tracks3d)[..., 2] + clips.w2c[..., None, 2, 3]
    xy = clips.tracks
    inside = (z > 0) & (xy[..., 0] >= -0.5) & (xy[..., 0] < 63.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < 47.5)
    hidden = inside & ~clips.visible
    assert hidden.sum() > 50  # the test is not vacuous
    origins, dirs = pixel_rays(xy.reshape(B, V * T, -1, 2), scene.w2c.reshape(B, V * T, 4, 4),
                               scene.K.reshape(B, V * T, 3, 3), normalize=False)
    hits = cast(scene, origins, dirs, (torch.arange(V * T) % T).expand(B, -1), surface=False)
    hit_depth = hits.depth.reshape(B, V, T, -1)
    hit_inst = hits.instance.reshape(B, V, T, -1)
    nearer = hit_depth < z * (1 - 1e-4)
    other_surface_same_depth = hit_inst != clips.track_instance[:, None, None]
    assert (nearer | other_surface_same_depth)[hidden].all()
    assert nearer[hidden].float().mean() > 0.95
    # and a visible point has nothing nearer
    assert not (hit_depth < z * (1 - 1e-3))[clips.visible].any()


def test_depth_map_agrees_with_track_depth(rendered):
    clips, _ = rendered
    b, v, t = 0, 1, 3
    vis = clips.visible[b, v, t]
    p = clips.tracks3d[b, t, vis]
    z = (p @ clips.w2c[b, v, t, :3, :3].T + clips.w2c[b, v, t, :3, 3])[:, 2]
    d = _bilinear(clips.depth[b, v, t][None], clips.tracks[b, v, t, vis])[:, 0]
    assert ((d - z).abs() / z).median() < 0.01


def test_same_time_tracks_satisfy_epipolar_geometry_and_triangulate(rendered):
    clips, _ = rendered
    total = 0
    for b in range(3):
        for t in (0, 5):
            both = clips.visible[b, 0, t] & clips.visible[b, 2, t]
            x1, x2 = clips.tracks[b, 0, t, both].double(), clips.tracks[b, 2, t, both].double()
            w2c, K = clips.w2c[b, :, t].double(), clips.K[b, :, t].double()
            F = fundamental_matrix(w2c[0], K[0], w2c[2], K[2])
            assert epipolar_distance(F, x1, x2).max() < 0.01  # pixels
            X = cv2.triangulatePoints((K[0] @ w2c[0, :3]).numpy(), (K[2] @ w2c[2, :3]).numpy(), x1.T.numpy(), x2.T.numpy())
            X = (X[:3] / X[3]).T
            gt = clips.tracks3d[b, t, both].double().numpy()
            np.testing.assert_allclose(X, gt, atol=2e-3 * np.abs(gt).max())
            total += len(x1)
    assert total > 40


def test_rendering_is_reproducible_and_batch_independent(rendered):
    clips, _ = rendered
    again = render_clips(CFG, SEEDS[1:2])
    assert torch.equal(again.video[0], render_clips(CFG, SEEDS[1:2]).video[0])
    torch.testing.assert_close(again.video[0], clips.video[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(again.tracks[0], clips.tracks[1], atol=1e-4, rtol=0)
    assert again.meta[0] == clips.meta[1]
    assert not torch.equal(clips.video[0], clips.video[1])


def test_static_scenes_keep_still_and_dynamic_ones_move():
    static = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=32, dynamic_prob=0.0), [1, 2])
    assert torch.allclose(static.tracks3d, static.tracks3d[:, :1].expand_as(static.tracks3d), atol=1e-5)
    moving = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=32, dynamic_prob=1.0,
                                      moving_prob=1.0), [1, 2])
    on_obj = moving.track_instance >= 2
    motion = (moving.tracks3d[:, -1] - moving.tracks3d[:, 0]).norm(dim=-1)
    assert (motion[on_obj] > 1e-3).all() and (motion[moving.track_instance == 1] < 1e-5).all()
    ground = moving.tracks3d[:, 0][moving.track_instance == 1]
    assert ground[:, 2].abs().max() < 1e-4  # ground tracks lie on z = 0


@pytest.mark.parametrize("baseline,lo,hi", [("small", 1.0, 14.0), ("wide", 22.0, 72.0)])
def test_view_baselines(baseline, lo, hi):
    cfg = SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=8, baseline=baseline, camera_motions=("static",))
    for seed in range(5):
        scene, info = sample_scene(cfg, torch.Generator().manual_seed(seed))
        c = camera_centers(scene.w2c[0, :, 0])
        target = torch.zeros(3)
        a, b = (c[0, :2] - target[:2]), (c[1, :2] - target[:2])
        angle = torch.rad2deg(torch.arccos((a @ b) / (a.norm() * b.norm()))).item()
        assert info["baseline"] == baseline and lo - 6 < angle < hi + 6


def test_split_seeds_are_disjoint():
    train = {clip_seed(0, i, "train") for i in range(2000)}
    test = {clip_seed(0, i, "test") for i in range(2000)}
    assert not train & test and len(train) == 2000
    with pytest.raises(ValueError, match="split"):
        clip_seed(0, 0, "holdout")


@pytest.mark.parametrize("field,value", [("views", 0), ("height", -1), ("width", 0), ("num_tracks", 0), ("frames", 0)])
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=f"SynthConfig.{field}"):
        SynthConfig(**{field: value})
    with pytest.raises(ValueError, match="baseline"):
        SynthConfig(baseline="huge")
    with pytest.raises(ValueError, match="camera_motions"):
        SynthConfig(camera_motions=("teleport",))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu = render_clips(CFG, SEEDS[:1])
    gpu = render_clips(CFG, SEEDS[:1], device="cuda")
    assert (gpu.video.cpu() - cpu.video).abs().gt(1e-3).float().mean() < 1e-3


def test_queries_jittered_to_the_last_pixel_edge_do_not_index_past_the_image(monkeypatch):
    # x = W - 1 + (0.5 - 3e-8) is W - 0.5 in float32, and + 0.5 floors to W: the sampled pixel must stay W - 1
    import mvtrack.scenes.tracks as tracks_module

    original = tracks_module.sample_queries

    def at_the_edge(instance, num_tracks, generators, view=None):
        queries = original(instance, num_tracks, generators, view)
        W = instance.shape[-1]
        queries[:, :, 2] = torch.tensor(W - 1, dtype=torch.float32) + torch.tensor(0.49999997, dtype=torch.float32)
        return queries

    monkeypatch.setattr(tracks_module, "sample_queries", at_the_edge)
    clip = render_clips(SynthConfig(views=1, frames=2, height=16, width=16, num_tracks=32), [clip_seed(0, 0)])
    assert clip.tracks.shape == (1, 1, 2, 32, 2)
