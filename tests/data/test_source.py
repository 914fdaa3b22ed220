"""Sources as a model sees them: crops that cameras, target files and depth follow; geometry of the source's frames."""

import numpy as np
import pytest
import torch

from mvtrack.data import load_source, target_cameras
from mvtrack.data.source_geometry import SCENE_DEPTH, dense_tracks, estimate_geometry, scene_scale
from mvtrack.evaluation import psnr
from mvtrack.geometry import write_re10k
from mvtrack.runners.real_bench import stereo_splat
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4


def _write_clip(root, height, width, frames=6, seed=0):
    """A static engine clip of one view as a user has it: MP4, RealEstate10K camera file and depth, at H x W."""
    cfg = SynthConfig(views=1, frames=frames, height=height, width=width, num_tracks=8, dynamic_prob=0.0,
                      camera_motions=("orbit",))
    clip = render_clips(cfg, [clip_seed(seed, 0, "val")])
    write_mp4(root / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(root / "src.txt", clip.w2c[0, 0], clip.K[0, 0], height, width)
    np.save(root / "depth.npy", clip.depth[0, 0].numpy())
    return clip


@pytest.mark.parametrize("height, width", [(36, 64), (60, 40)], ids=["16:9", "2:3"])
def test_a_source_re_rendered_along_its_own_camera_file_reproduces_it(tmp_path, height, width):
    """The source's camera file given back as the target file (absolute): the target's cameras are the source's, so
    the geometry-only re-rendering lands every pixel where it was. Before the fix a target file's intrinsics were
    taken at the output size, ignoring the crop: the field of view was wrong (PSNR ~12 dB here)."""
    clip = _write_clip(tmp_path, height, width)
    source = load_source(tmp_path / "src.mp4", (32, 32), cameras=tmp_path / "src.txt", mirrored="error")
    assert source.crop.box == ((height - min(height, width)) // 2, (width - min(height, width)) // 2,
                               min(height, width), min(height, width))
    w2c, K = target_cameras(str(tmp_path / "src.txt"), source, absolute=True)
    torch.testing.assert_close(K, source.K)
    torch.testing.assert_close(w2c, source.w2c)
    source.depth = None
    target = load_source(tmp_path / "src.mp4", (32, 32), cameras=tmp_path / "src.txt", mirrored="error")
    geometry = estimate_geometry(load_source(tmp_path / "src.mp4", (32, 32), cameras=tmp_path / "src.txt",
                                             depth=tmp_path / "depth.npy"))
    out = stereo_splat(source, target, geometry)
    assert float(psnr(out.numpy(), source.frames.numpy()).mean()) > 40
    # a depth file is cut like the frames, never stretched: the crop of the engine's own depth, nearest-resized
    y0, x0, h, w = source.crop.box
    exact = clip.depth[0, 0][:, y0:y0 + h, x0:x0 + w]
    picked = ((torch.arange(32) + 0.5) * h / 32).floor()  # the source pixel under each output pixel's centre
    torch.testing.assert_close(geometry.depth, exact[:, picked.round().long()][:, :, picked.round().long()])


def test_target_files_of_a_wider_video_follow_the_crop(tmp_path):
    clip = _write_clip(tmp_path, 36, 64)
    source = load_source(tmp_path / "src.mp4", (32, 32), cameras=tmp_path / "src.txt")
    _, K = target_cameras(str(tmp_path / "src.txt"), source)
    fx_full = float(clip.K[0, 0, 0, 0, 0])
    assert K[0, 0, 0].item() == pytest.approx(fx_full * 32 / 36)  # the 36 px square window resized to 32
    assert K[0, 0, 2].item() == pytest.approx((float(clip.K[0, 0, 0, 0, 2]) - 14 + 0.5) * 32 / 36 - 0.5)


def test_a_target_file_from_a_later_frame_gives_those_frames_cameras(tmp_path):
    """FILE@N: the cameras of frames N.. of the file (held-out frames of a static scene), with their intrinsics."""
    _write_clip(tmp_path, 32, 32, frames=8)
    source = load_source(tmp_path / "src.mp4", (32, 32), num_frames=4, cameras=tmp_path / "src.txt")
    later = load_source(tmp_path / "src.mp4", (32, 32), num_frames=8, cameras=tmp_path / "src.txt",
                        indices=[4, 5, 6, 7])
    w2c, K = target_cameras(f"{tmp_path / 'src.txt'}@4", source, absolute=True)
    torch.testing.assert_close(w2c, later.w2c)
    torch.testing.assert_close(K, later.K)
    assert not torch.allclose(w2c, source.w2c)
    with pytest.raises(ValueError, match=r"src.txt: expected at least 9 frames \(from frame 5\), got 8"):
        target_cameras(f"{tmp_path / 'src.txt'}@5", source, absolute=True)

    # in a scaled scene (generate's), FILE@N is a file like FILE: its translations are scaled like the source's
    from dataclasses import replace

    from mvtrack.data.source_geometry import scale_cameras
    from mvtrack.runners.generate import SourceInputs, target_views

    scaled = SourceInputs(replace(source, w2c=scale_cameras(source.w2c, 2.5)), 2.5, None, None, [])
    for absolute in (True, False):
        (plain, _), (at0, _) = target_views(scaled, [str(tmp_path / "src.txt"), f"{tmp_path / 'src.txt'}@0"],
                                            absolute=absolute)
        torch.testing.assert_close(at0, plain)
        torch.testing.assert_close(plain, scaled.source.w2c)


def test_stereo_geometry_of_a_source_and_its_scene_scale(tmp_path):
    _write_clip(tmp_path, 64, 64, frames=8, seed=3)
    source = load_source(tmp_path / "src.mp4", (32, 32), cameras=tmp_path / "src.txt")
    truth = load_source(tmp_path / "src.mp4", (64, 64), cameras=tmp_path / "src.txt", depth=tmp_path / "depth.npy")
    geometry = estimate_geometry(source)  # stereo at twice the model's size: 64 x 64
    assert geometry.mode == "stereo" and geometry.depth.shape == (8, 64, 64) and geometry.valid.float().mean() > 0.15
    assert (geometry.supported >= geometry.valid).all() and geometry.supported.float().mean() > 0.4
    error = ((geometry.depth - truth.depth).abs() / truth.depth)
    # Disparities of a few pixels between neighbour frames, matched to a fraction of a pixel: a few percent. Measured
    # on 6 clips of this stream after H.264: median 3.7-7.1% on the confident pixels (6.1% on this one, 30% of its
    # pixels), 3.6-22% on everything that becomes tracks (13%, 74%).
    assert error[geometry.valid].median() < 0.1 and error[geometry.supported].median() < 0.25
    scale = scene_scale(geometry)
    assert scale * geometry.median_depth() == pytest.approx(SCENE_DEPTH)
    tracks = dense_tracks(source, geometry)
    N = tracks.points.shape[2]
    assert N == 8 * 64 * 64 and tracks.known.all() and tracks.static.all()  # every pixel of the depth maps
    assert (tracks.weight == 1).sum() == geometry.supported.sum() and (tracks.weight < 1).sum() == (~geometry.supported).sum()
    assert dense_tracks(source, geometry, everywhere=False).points.shape[2] == int(geometry.supported.sum())
    assert (tracks.points[0] == tracks.points[0, :1]).all()  # static: one position at every frame
    assert tracks.seen[0, tracks.origin, torch.arange(N)].all()  # each point is seen by the frame it came from


def test_a_source_without_cameras_gets_them_from_structure_from_motion(tmp_path):
    from mvtrack.scenes.footage import render_photo_scene
    from mvtrack.geometry import relative_pose
    from mvtrack.runners.generate import estimate_source_cameras

    frames, w2c, K = render_photo_scene("sideways", frames=8, size=128)
    write_mp4(tmp_path / "room.mp4", frames)
    source = load_source(tmp_path / "room.mp4", (64, 64))
    assert source.cameras == "default" and (source.w2c == torch.eye(4)).all()
    found = estimate_source_cameras(source)
    assert found.cameras == "estimated", found.note
    rel_true = relative_pose(torch.as_tensor(w2c[0]).double(), torch.as_tensor(w2c[-1]).double())
    rel_est = relative_pose(found.w2c[0].double(), found.w2c[-1].double())
    cos = ((rel_true[:3, :3].T @ rel_est[:3, :3]).trace() - 1) / 2
    assert torch.rad2deg(torch.arccos(cos.clamp(-1, 1))) < 3  # the rotation between the first and last frame
    direction = torch.nn.functional.cosine_similarity(rel_true[:3, 3], rel_est[:3, 3], dim=0)
    assert direction > 0.95  # and the direction of travel (the scale is the reconstruction's own)
    still = np.repeat(frames[:1], 6, 0)  # a camera that never moves: nothing to reconstruct
    write_mp4(tmp_path / "still.mp4", still)
    kept = estimate_source_cameras(load_source(tmp_path / "still.mp4", (64, 64)))
    assert kept.cameras == "default" and "structure from motion found no cameras" in kept.note


def test_the_source_splat_made_at_the_geometry_resolution_is_sharper_and_covers_as_the_models_own(tmp_path):
    """``source_splat``: the source carried into other cameras from the video at the depth maps' resolution and
    reduced to the model's. Against the truth of the target cameras (a static clip's odd frames) it must beat the
    same tracks splatted from the model-size frames (what the pixel path does itself), keep that splat's coverage,
    and land each target's view in its own camera (not another's). A half-pixel error in the finer intrinsics, or
    swapped sizes, loses the gain."""
    from mvtrack.data.source_geometry import carry_source, source_splat

    _write_clip(tmp_path, 64, 64, frames=8, seed=3)
    load = lambda idx: load_source(tmp_path / "src.mp4", (32, 32), 8, tmp_path / "src.txt", indices=idx)  # noqa: E731
    source, target = load([0, 2, 4, 6]), load([1, 3, 5, 7])
    geometry = estimate_geometry(source)
    assert geometry.depth.shape[-2:] == (64, 64)
    tracks = dense_tracks(source, geometry)
    fine = source_splat(source, tracks, target.w2c[None], target.K[None], (64, 64))[0]  # (T, 4, 32, 32)
    total, mass, coverage = carry_source(source, tracks, target.w2c[None], target.K[None], (32, 32))
    coarse = (total / mass.clamp_min(1e-6))[0]
    covered = (fine[:, 3:] == 1) & (coverage[0] >= 1)
    assert covered.float().mean() > 0.5
    assert (fine[:, 3] - coverage[0, :, 0].clamp(max=1)).abs().mean() < 0.05
    truth = target.frames

    def score(image, truth):
        return float(10 * torch.log10(1 / ((image - truth) ** 2)[covered.expand_as(truth)].mean()))

    assert score(fine[:, :3], truth) > score(coarse, truth) + 0.5  # measured +1.0 dB
    other = load([0, 0, 0, 0])  # another camera: the source's first, at every frame
    swapped = source_splat(source, tracks, other.w2c[None], other.K[None], (64, 64))[0]
    assert score(fine[:, :3], truth) > score(swapped[:, :3], truth) + 3.0
