import math

import pytest
import torch

from mvtrack.data import MultiViewClip
from mvtrack.data.pseudo_views import homography_pseudo_views, monocular_clip, pseudo_homographies, smooth_rotations
from mvtrack.geometry import apply_homography, camera_centers, pixel_grid, project, rotation_angle, unproject
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

H_, W_, T_ = 32, 32, 4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def rendered():
    cfg = SynthConfig(views=2, frames=T_, height=H_, width=W_, num_tracks=32, query_view=1)
    return render_clips(cfg, [clip_seed(0, i, "test") for i in range(2)])


def _gradient_clip(depth: float | None = None) -> MultiViewClip:
    """A monocular clip whose frames are linear in (x, y), so bilinear sampling is exact inside the image."""
    xy = pixel_grid(H_, W_)  # (H, W, 2)
    x, y = xy[..., 0] / (W_ - 1), xy[..., 1] / (H_ - 1)
    frames = [torch.stack([0.1 + 0.8 * x, 0.1 + 0.8 * y, 0.5 + 0.2 * (x - y) + 0.05 * t]) for t in range(T_)]
    clip = monocular_clip(torch.stack(frames), fov_degrees=55.0)
    if depth is not None:
        clip.depth = torch.full((1, T_, H_, W_), depth)
        clip.validate()
    return clip


def _target_sources(H: torch.Tensor):
    """Source positions (T, H*W, 2) of every target pixel, and whether each lies inside the source image."""
    src = apply_homography(torch.linalg.inv(H), pixel_grid(H_, W_).reshape(1, -1, 2).expand(H.shape[0], -1, -1))
    inside = (src[..., 0] >= 0) & (src[..., 0] <= W_ - 1) & (src[..., 1] >= 0) & (src[..., 1] <= H_ - 1)
    return src, inside


def test_colours_follow_the_homography():
    clip = _gradient_clip()
    out = homography_pseudo_views(clip, num_views=3, generator=_gen(1))
    assert out.video.shape == (3, T_, 3, H_, W_)
    torch.testing.assert_close(out.video[0], clip.video[0])
    for v in (1, 2):
        H = torch.tensor(out.meta["pseudo_views"]["homographies"][v])  # (T, 3, 3)
        assert not torch.allclose(H, torch.eye(3).expand_as(H), atol=1e-2)
        src, inside = _target_sources(H)
        assert inside.float().mean() > 0.5
        x, y = src[..., 0] / (W_ - 1), src[..., 1] / (H_ - 1)
        t = torch.arange(T_)[:, None]
        expected = torch.stack([0.1 + 0.8 * x, 0.1 + 0.8 * y, 0.5 + 0.2 * (x - y) + 0.05 * t], 1)  # (T, 3, HW)
        got = out.video[v].reshape(T_, 3, -1)
        mask = inside[:, None].expand_as(got)
        assert (got[mask] - expected[mask]).abs().max() < 1e-4
        far = ((src[..., 0] < -1) | (src[..., 0] > W_) | (src[..., 1] < -1) | (src[..., 1] > H_))[:, None]
        assert (got[far.expand_as(got)] == 0).all()


def test_tracks_and_cameras_are_exact(rendered):
    clip = rendered[0]
    out = homography_pseudo_views(clip, num_views=3, view=1, generator=_gen(2))
    src_w2c, src_K = clip.w2c[1], clip.K[1]
    torch.testing.assert_close(out.video[0], clip.video[1])
    torch.testing.assert_close(out.tracks[0], clip.tracks[1])
    for v in (1, 2):
        H = torch.tensor(out.meta["pseudo_views"]["homographies"][v])
        torch.testing.assert_close(out.tracks[v], apply_homography(H, clip.tracks[1]), atol=1e-4, rtol=0)
        # Same centre, principal point kept, one zoom for both focal lengths, H recomputed from the cameras.
        torch.testing.assert_close(camera_centers(out.w2c[v]), camera_centers(src_w2c), atol=1e-4, rtol=0)
        torch.testing.assert_close(out.K[v][:, :2, 2], src_K[:, :2, 2])
        torch.testing.assert_close(out.K[v][:, 0, 0] / src_K[:, 0, 0], out.K[v][:, 1, 1] / src_K[:, 1, 1])
        torch.testing.assert_close(pseudo_homographies(src_w2c, src_K, out.w2c[v], out.K[v]), H, atol=1e-4, rtol=1e-4)
        # Projecting the world tracks through the pseudo camera lands on the mapped tracks.
        xy, z = project(clip.tracks3d, out.w2c[v], out.K[v])
        vis = out.visible[v]
        assert vis.sum() > 10
        assert (xy - out.tracks[v])[vis].abs().max() < 1e-3
        assert (z[vis] > 0).all()
        assert not (vis & ~clip.visible[1]).any()
        inside = (xy[..., 0] >= -0.5) & (xy[..., 0] < W_ - 0.5) & (xy[..., 1] >= -0.5) & (xy[..., 1] < H_ - 0.5)
        assert not (vis & ~inside).any()
        assert (vis == (clip.visible[1] & inside)).all()
    torch.testing.assert_close(out.tracks3d, clip.tracks3d)
    torch.testing.assert_close(out.track_instance, clip.track_instance)
    assert (out.queries[:, 0] == 0).all()  # every query was in view 1, now view 0
    torch.testing.assert_close(out.queries[:, 1:], clip.queries[:, 1:])


def test_depth_is_the_new_cameras_z():
    clip = _gradient_clip(depth=3.0)
    out = homography_pseudo_views(clip, num_views=2, generator=_gen(3), max_degrees=15.0, max_zoom=0.2)
    H = torch.tensor(out.meta["pseudo_views"]["homographies"][1])
    src, inside = _target_sources(H)
    world = unproject(src, torch.full(src.shape[:-1], 3.0), clip.w2c[0], clip.K[0])  # (T, HW, 3)
    xy, z = project(world, out.w2c[1], out.K[1])
    torch.testing.assert_close(xy, pixel_grid(H_, W_).reshape(1, -1, 2).expand_as(xy), atol=1e-3, rtol=0)
    got = out.depth[1].reshape(T_, -1)
    assert (got[inside] - z[inside]).abs().max() < 1e-4
    assert (z[inside] - 3.0).abs().max() > 0.01  # the z conversion matters at this rotation
    torch.testing.assert_close(out.depth[0], clip.depth[0])


def test_rendered_depth_matches_tracks(rendered):
    clip = rendered[1]
    out = homography_pseudo_views(clip, num_views=2, view=1, generator=_gen(4))
    _, z = project(clip.tracks3d, out.w2c[1], out.K[1])
    vis = out.visible[1]
    px = out.tracks[1].round().long()
    t = torch.arange(T_)[:, None].expand_as(vis)
    sampled = out.depth[1][t, px[..., 1].clamp(0, H_ - 1), px[..., 0].clamp(0, W_ - 1)]
    rel = ((sampled - z).abs() / z)[vis]
    assert rel.median() < 0.02


def test_smooth_rotations_are_smooth_bounded_and_deterministic():
    T, deg, roll, zoom_max = 16, 10.0, 3.0, 0.15
    R, zoom = smooth_rotations(T, _gen(5), max_degrees=deg, max_roll=roll, max_zoom=zoom_max)
    assert R.shape == (T, 3, 3) and zoom.shape == (T,)
    torch.testing.assert_close(R @ R.transpose(-1, -2), torch.eye(3).expand(T, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(T))
    assert (rotation_angle(R) <= math.radians(2 * deg + roll) + 1e-5).all()
    assert ((zoom - 1).abs() <= zoom_max + 1e-6).all()
    # Cosine easing: each step moves each Euler angle at most pi / 2 / (T - 1) of its full range.
    step = rotation_angle(R[1:] @ R[:-1].transpose(-1, -2))
    assert step.max() <= math.pi / 2 / (T - 1) * math.radians(2 * deg + 2 * deg + 2 * roll) + 1e-5
    assert rotation_angle(R[-1] @ R[0].T) > 1e-3
    assert (zoom[1:] - zoom[:-1]).abs().max() <= math.pi / 2 / (T - 1) * 2 * zoom_max + 1e-6
    R2, zoom2 = smooth_rotations(T, _gen(5), max_degrees=deg, max_roll=roll, max_zoom=zoom_max)
    assert torch.equal(R, R2) and torch.equal(zoom, zoom2)
    R3, _ = smooth_rotations(T, _gen(6), max_degrees=deg, max_roll=roll, max_zoom=zoom_max)
    assert not torch.allclose(R, R3)
    # Yaw and pitch turn about axes in the image plane, roll about the optical axis.
    R_roll, _ = smooth_rotations(T, _gen(5), max_degrees=0.0, max_roll=roll, max_zoom=0.0)
    torch.testing.assert_close(R_roll[:, :, 2], torch.tensor([0.0, 0.0, 1.0]).expand(T, 3))
    assert rotation_angle(R_roll).max() > 1e-3
    R_turn, _ = smooth_rotations(T, _gen(5), max_degrees=deg, max_roll=0.0, max_zoom=0.0)
    assert R_turn[:, 2, 2].min() < 1 - 1e-4  # the optical axis moves
    assert (R_turn[:, 0, 1].abs() < 1e-6).all()  # pitch after yaw: the new x axis keeps no old-y component
    R0, zoom0 = smooth_rotations(T, _gen(5), max_degrees=0.0, max_roll=0.0, max_zoom=0.0)
    torch.testing.assert_close(R0, torch.eye(3).expand(T, 3, 3))
    torch.testing.assert_close(zoom0, torch.ones(T))


def test_batched_clips_draw_separately_and_drop_foreign_queries(rendered):
    out = homography_pseudo_views(rendered, num_views=2, view=0, generator=_gen(7))
    assert out.batched and out.video.shape == (2, 2, T_, 3, H_, W_)
    assert out.queries is None  # the queries were in view 1
    assert isinstance(out.meta, list) and all(m["pseudo_views"]["source_view"] == 0 for m in out.meta)
    # Each clip has its own draw: compare the relative rotations and zooms, which do not depend on the clip's camera.
    R_rel = out.w2c[:, 1, :, :3, :3] @ out.w2c[:, 0, :, :3, :3].transpose(-1, -2)  # (B, T, 3, 3)
    zoom = out.K[:, 1, :, 0, 0] / out.K[:, 0, :, 0, 0]  # (B, T)
    assert rotation_angle(R_rel[0] @ R_rel[1].transpose(-1, -2)).max() > 1e-3
    assert (zoom[0] - zoom[1]).abs().max() > 1e-3
    again = homography_pseudo_views(rendered, num_views=2, view=0, generator=_gen(7))
    assert torch.equal(again.video, out.video) and torch.equal(again.w2c, out.w2c)
    with pytest.raises(ValueError, match="view"):
        homography_pseudo_views(rendered, view=2)
    with pytest.raises(ValueError, match="num_views"):
        homography_pseudo_views(rendered, num_views=0)


def test_monocular_clip_wraps_and_checks():
    video = torch.randint(0, 256, (T_, 3, 8, 12), dtype=torch.uint8, generator=_gen(8))
    clip = monocular_clip(video)
    assert clip.video.shape == (1, T_, 3, 8, 12) and clip.video.max() <= 1
    assert clip.tracks.shape == (1, T_, 0, 2) and clip.visible.shape == (1, T_, 0)
    torch.testing.assert_close(clip.w2c, torch.eye(4).expand(1, T_, 4, 4))
    torch.testing.assert_close(clip.K[0, 0, :2, 2], torch.tensor([5.5, 3.5]))
    torch.testing.assert_close(clip.K[0, 0, 0, 0], torch.tensor(6 / math.tan(math.radians(30))))
    with pytest.raises(ValueError, match="video"):
        monocular_clip(torch.rand(3, 8, 8))
    with pytest.raises(ValueError, match="video"):
        monocular_clip(torch.rand(T_, 4, 8, 8))
    with pytest.raises(ValueError, match=r"video.*\[0, 1\]"):
        monocular_clip(torch.rand(T_, 3, 8, 8) * 2)
    with pytest.raises(ValueError, match=r"video.*\[0, 1\]"):
        monocular_clip(-torch.rand(T_, 3, 8, 8))
    with pytest.raises(ValueError, match="fov_degrees"):
        monocular_clip(torch.rand(T_, 3, 8, 8), fov_degrees=180.0)
    with pytest.raises(ValueError, match="K"):
        monocular_clip(torch.rand(T_, 3, 8, 8), K=torch.eye(3).expand(T_ + 1, 3, 3))
