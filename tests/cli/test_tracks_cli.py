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


def test_tracks_triangulates_a_video_with_its_cameras(clip_files):
    clip, root = clip_files
    out = root / "out" / "tracks.npz"
    result = runner.invoke(app, ["tracks", "--video", str(root / "source.mp4"), "--cameras", str(root / "cameras.txt"),
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "triangulated flow tracks" in result.output and "median residual" in result.output
    tracks = RealTracks.load(out)
    T, N = tracks.visible.shape
    assert T == 12 and tracks.points.shape == (1, T, N, 3) and tracks.static.float().mean() > 0.3
    assert f"{N} tracks over 12 frames" in result.output and f"static {int(tracks.static.sum())}" in result.output
    overlay = iio.imread(out.with_suffix(".png"))
    assert overlay.shape[0] == 256 and overlay.shape[1] >= 4 * 256  # 4 frames upscaled 4x, side by side
    # Depth of the triangulated points against the engine's exact depth at their grid points, after H.264 and a
    # RealEstate10K round trip: median relative error 4.5% on this clip (3.8% from the exact frames)
    static = tracks.static
    t0, x, y = tracks.queries[static].long().T
    pts = tracks.points[0].nan_to_num(nan=np.inf).amin(0)[static]  # (S, 3), one position per static point
    _, z = project(pts[:, None].double(), clip.w2c[0, t0].double(), clip.K[0, t0].double())
    z_true = clip.depth[0][t0, y, x].double()
    assert ((z[:, 0] - z_true).abs() / z_true).median() < 0.08

    result = runner.invoke(app, ["tracks", "--video", str(root / "source.mp4"), "--cameras", str(root / "cameras.txt"),
                                 "--depth", str(root / "depth.npy"), "--frames", "8", "--size", "32",
                                 "--out", str(root / "depth_tracks.npz")])
    assert result.exit_code == 0, result.output
    lifted = RealTracks.load(root / "depth_tracks.npz")
    assert lifted.mode == "depth file" and lifted.points.shape[1] == 8 and lifted.residual is None
    assert lifted.tracks[..., 0].max() < 32  # frames and depth resized to 32 x 32


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
        (["--depth", str(root / "depth.npy"), "--tracks3d", str(root / "depth.npy")], "at most one of"),
        (["--tracks3d", str(root / "depth.npy")], r"field tracks3d: expected numbers (T, N, 3)"),
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
