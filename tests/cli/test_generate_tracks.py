"""`mvtrack generate` with a Track2View model: tracks from a depth file, from stereo depth of the source, or none."""

import numpy as np
import torch
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.geometry import write_re10k
from mvtrack.models import build_model
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4

runner = CliRunner()


def test_generate_builds_tracks_for_a_track2view_model(tmp_path):
    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="sample",
                        track_conditioner=dict(blocks=[0], width=16, layers=1, heads=2, bands=2))
    model.save_pretrained(tmp_path / "model")
    clip = render_clips(SynthConfig(views=1, frames=4, height=32, width=32, num_tracks=8, dynamic_prob=0.0,
                                    camera_motions=("orbit",)), [clip_seed(4, 0)])
    write_mp4(tmp_path / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(tmp_path / "src.txt", clip.w2c[0, 0], clip.K[0, 0], 32, 32)
    np.save(tmp_path / "depth.npy", clip.depth[0, 0].numpy())
    common = ["generate", "--video", str(tmp_path / "src.mp4"), "--model", str(tmp_path / "model"), "--frames", "4",
              "--size", "32", "--steps", "1", "--target", "orbit:10"]

    result = runner.invoke(app, common + ["--cameras", str(tmp_path / "src.txt"), "--depth", str(tmp_path / "depth.npy"),
                                          "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "depth file: 4 frames" in said and f"{4 * 32 * 32} source points in 3D (stereo depth)" in said
    assert "scene scaled by" in said
    assert (tmp_path / "a" / "view_01.mp4").is_file()

    result = runner.invoke(app, common + ["--cameras", str(tmp_path / "src.txt"), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "stereo at 32x32" in said and "source points in 3D (stereo depth)" in said  # capped at the video's size

    result = runner.invoke(app, common + ["--out", str(tmp_path / "b")])  # no cameras: SfM fails on 4 tiny frames
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "structure from motion found no cameras" in said and "running without tracks (camera-only)" in said

    bad = np.full((4, 32, 32), -1.0, np.float32)
    np.save(tmp_path / "bad.npy", bad)
    result = runner.invoke(app, common + ["--depth", str(tmp_path / "bad.npy"), "--out", str(tmp_path / "c")])
    assert result.exit_code == 2
    assert "bad.npy" in result.output and "positive" in result.output


def test_generate_with_truth_scores_and_shows_it(tmp_path):
    """--truth: the true frames of the target's cameras (here the source itself, re-rendered along its own camera
    file) are cropped like the source, scored and shown as the last column of contact_sheet.png."""
    import cv2

    torch.manual_seed(0)
    build_model("tiny", prediction_type="sample").save_pretrained(tmp_path / "model")
    clip = render_clips(SynthConfig(views=1, frames=4, height=32, width=48, num_tracks=8, dynamic_prob=0.0,
                                    camera_motions=("orbit",)), [clip_seed(4, 0)])
    write_mp4(tmp_path / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(tmp_path / "src.txt", clip.w2c[0, 0], clip.K[0, 0], 48, 32)
    common = ["generate", "--video", str(tmp_path / "src.mp4"), "--model", str(tmp_path / "model"), "--frames", "4",
              "--size", "32", "--steps", "1", "--cameras", str(tmp_path / "src.txt"), "--absolute-targets",
              "--truth", str(tmp_path / "src.mp4")]
    result = runner.invoke(app, common + ["--target", str(tmp_path / "src.txt"), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "PSNR" in said and "SSIM" in said and "source | src.txt | truth" in said
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "a" / "contact_sheet.png")), cv2.COLOR_BGR2RGB)
    side = 32 * 6  # frames upscaled to about 192 px
    assert sheet.shape[1] == 3 * side
    first = sheet[22:22 + side]  # below the header row
    np.testing.assert_array_equal(first[:, 2 * side:], first[:, :side])  # truth = the source, cropped the same way
    assert not np.array_equal(first[:, side:2 * side], first[:, :side])

    result = runner.invoke(app, common + ["--target", "orbit:10", "--target", "orbit:-10", "--out", str(tmp_path / "b")])
    assert result.exit_code == 2 and "--truth" in result.output and not (tmp_path / "b").exists()
