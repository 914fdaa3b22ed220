import imageio.v3 as iio
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.data import RealTracks
from mvtrack.geometry import project, write_re10k
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4

runner = CliRunner()


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    """An engine clip's source view as a user would have it: an MP4 and a RealEstate10K camera file."""
    cfg = SynthConfig(views=1, frames=12, height=64, width=64, num_tracks=16, dynamic_prob=0.0,
                      camera_motions=("orbit",))
    clip = render_clips(cfg, [clip_seed(0, 1, "val")]).unbatch()[0]
    root = tmp_path_factory.mktemp("clip")
    write_mp4(root / "source.mp4", to_uint8_frames(clip.video[0]))
    write_re10k(root / "cameras.txt", clip.w2c[0], clip.K[0], 64, 64)
    np.save(root / "depth.npy", clip.depth[0].numpy())
    return clip, root


def test_tracks_lifts_every_confirmed_pixel_of_a_video_with_its_cameras(clip_files):
    clip, root = clip_files
    out = root / "out" / "tracks.npz"
    result = runner.invoke(app, ["tracks", "--video", str(root / "source.mp4"), "--cameras", str(root / "cameras.txt"),
                                 "--size", "32", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "stereo at 64x64" in result.output and "(stereo depth)" in result.output
    tracks = RealTracks.load(out)
    T, N = tracks.visible.shape
    assert T == 12 and tracks.points.shape == (1, T, N, 3) and tracks.static.all() and N > 12 * 64 * 64 * 0.3
    assert f"{N} tracks over 12 frames" in result.output
    for png in (out.with_suffix(".png"), out.with_name("tracks_depth.png")):
        assert iio.imread(png).shape[1] >= 4 * 128  # 4 frames side by side, upscaled
    # (the accuracy of stereo depth against the engine's is tested in tests/data/test_source.py)
    assert torch.isfinite(tracks.points).all() and (tracks.seen[0, tracks.origin, torch.arange(N)]).all()

    result = runner.invoke(app, ["tracks", "--video", str(root / "source.mp4"), "--cameras", str(root / "cameras.txt"),
                                 "--depth", str(root / "depth.npy"), "--frames", "8", "--size", "32",
                                 "--out", str(root / "depth_tracks.npz")])
    assert result.exit_code == 0, result.output
    lifted = RealTracks.load(root / "depth_tracks.npz")
    assert lifted.mode == "stereo depth" and lifted.points.shape[1] == 8 and "depth file" in result.output
    assert lifted.points.shape[2] == 8 * 32 * 32  # every pixel of a depth file, at the requested size
    # a depth file's points, in the camera file's world: each lands on its pixel at its depth in its origin frame
    xy, z = project(lifted.points[0, 0, :, None].double(), clip.w2c[0, lifted.origin].double(),
                    clip.K[0, lifted.origin].double())
    xy, z = xy[:, 0], z[:, 0]
    pixel = ((xy + 0.5) * 32 / 64 - 0.5).round().long()  # in the 32 px frame (the depth file nearest-resized)
    y, x = (((pixel.flip(-1) + 0.5) * 64 / 32).floor().long()).unbind(-1)  # its source pixel in the 64 px file
    torch.testing.assert_close(z, clip.depth[0][lifted.origin, y, x].double(), rtol=1e-4, atol=1e-4)


def test_tracks_reports_bad_inputs_in_one_line(clip_files, tmp_path):
    clip, root = clip_files
    base = ["tracks", "--video", str(root / "source.mp4"), "--cameras", str(root / "cameras.txt"),
            "--out", str(tmp_path / "t.npz")]
    depth = clip.depth[0].numpy().copy()
    depth[3, 5, 5] = np.nan
    np.savez(tmp_path / "nan.npz", depth=depth)
    cases = [
        (["--depth", str(tmp_path / "nan.npz")], "field depth: contains NaN (frame 3)"),
        (["--frames", "20"], "expected at least 20 frames"),
        (["--depth-model", str(tmp_path / "nowhere")], "expected a transformers depth-estimation directory"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, base + extra)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), (extra, result.output)
    short = tmp_path / "short.txt"
    write_re10k(short, clip.w2c[0, :6], clip.K[0, :6], 64, 64)
    result = runner.invoke(app, base[:4] + [str(short)] + base[5:] + ["--frames", "10"])
    assert result.exit_code == 2 and "camera file" in result.output and "expected at least 10 frames" in result.output
    assert not (tmp_path / "t.npz").exists()
    assert torch.isfinite(clip.depth).all()  # the engine's own depth stays valid
