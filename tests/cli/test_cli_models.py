import json
from pathlib import Path

import imageio.v3 as iio
import torch
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.geometry import write_re10k
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4

runner = CliRunner()
TINY = Path(__file__).resolve().parents[2] / "configs" / "camera_only_tiny.yaml"


def train_tiny(out: Path) -> Path:
    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(TINY),
            "--set",
            f"output_dir={out}",
            "--set",
            "max_steps=2",
            "--set",
            "data.height=16",
            "--set",
            "data.width=16",
            "--set",
            "data.frames=2",
        ],
    )
    assert result.exit_code == 0, result.output
    return out / "final"


def test_train_demo_generate(tmp_path):
    model = train_tiny(tmp_path / "run")
    assert json.loads((model / "mvtrack.json").read_text())["data"]["height"] == 16

    # demo: a preset of bench, held-out re-rendering at the model's training size beside the references, scored from
    # the decoded videos as bench scores them
    result = runner.invoke(
        app, ["demo", "--model", str(model), "--out", str(tmp_path / "demo"), "--clips", "1", "--steps", "2"]
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(rows) == {"run", "copy_source", "source_depth_splat", "depth_warp"}  # the model row: its run's name
    assert all(row["views_scored"] == 1 and {"psnr", "ssim"} <= set(row["metrics"]) for row in rows.values())
    truth = iio.imread(tmp_path / "demo" / "gt" / "demo-test" / "clip_0000" / "view_1.mp4", plugin="pyav")
    assert truth.shape == (2, 16, 16, 3)  # the model's training length and size
    assert (tmp_path / "demo" / "contact_sheet.png").is_file() and "psnr" in result.output

    # generate from a video with its RealEstate10K cameras along a file target and a named one
    clip = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), [1])
    write_mp4(tmp_path / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(tmp_path / "src.txt", clip.w2c[0, 0], clip.K[0, 0], 16, 16)
    write_re10k(tmp_path / "tgt.txt", clip.w2c[0, 1], clip.K[0, 1], 16, 16)
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(model),
            "--video",
            str(tmp_path / "src.mp4"),
            "--cameras",
            str(tmp_path / "src.txt"),
            "--target",
            str(tmp_path / "tgt.txt"),
            "--target",
            "orbit:20",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "gen"),
        ],
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "gen").iterdir())
    assert names == ["contact_sheet.png", "grid.mp4", "view_00_source.mp4", "view_01.mp4", "view_02.mp4"]
    assert iio.imread(tmp_path / "gen" / "grid.mp4", plugin="pyav").shape[:3] == (2, 16, 3 * 16 + 2 * 2)

    # image-to-video: one first frame, two views generated jointly
    iio.imwrite(tmp_path / "first.png", to_uint8_frames(clip.video[0, 0])[0])
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            str(model),
            "--image",
            str(tmp_path / "first.png"),
            "--target",
            "pan:10",
            "--steps",
            "2",
            "--out",
            str(tmp_path / "i2v"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "i2v" / "view_01.mp4").is_file()


def test_generate_and_train_errors(tmp_path):
    result = runner.invoke(app, ["generate", "--model", "tiny", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "exactly one of --video" in result.output
    result = runner.invoke(
        app, ["generate", "--model", str(tmp_path / "nowhere"), "--image", "x.png", "--out", str(tmp_path)]
    )
    assert result.exit_code == 2 and "nor an existing local directory" in result.output
    frame = (torch.rand(1, 3, 16, 16) * 255).byte().permute(0, 2, 3, 1).numpy()
    iio.imwrite(tmp_path / "first.png", frame[0])
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            "tiny",
            "--image",
            str(tmp_path / "first.png"),
            "--size",
            "16",
            "--frames",
            "2",
            "--target",
            "spiral:3",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "unknown name 'spiral'" in result.output
    result = runner.invoke(
        app,
        [
            "generate",
            "--model",
            "tiny",
            "--video",
            str(tmp_path / "missing.mp4"),
            "--size",
            "16",
            "--frames",
            "2",
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2 and "not found" in result.output
    result = runner.invoke(app, ["train", "--config", str(TINY), "--set", "lr_schedule=linear"])
    assert result.exit_code == 2 and "lr_schedule" in result.output


def test_generate_four_targets_collaboratively(tmp_path):
    """`--joint --views-per-group 2`: four targets from a pair-trained epipolar model, every combination of two
    targets (with the source) averaged per step; the four views differ from each other and from the source."""
    from mvtrack.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", epipolar={"mode": "module", "blocks": [1]})
    for p in [*model.cross_view.parameters(), *model.camera_encoder.parameters()]:  # as after training
        p.data.normal_(0, 0.1)
    model.save_pretrained(tmp_path / "cvd")
    clip = render_clips(SynthConfig(views=1, frames=2, height=16, width=16, num_tracks=4), [2])
    write_mp4(tmp_path / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    args = ["generate", "--model", str(tmp_path / "cvd"), "--video", str(tmp_path / "src.mp4"), "--frames", "2",
            "--size", "16", "--steps", "2", "--views-per-group", "2"]
    for t in ("orbit:10", "orbit:-10", "pan:10", "dolly:0.3"):
        args += ["--target", t]
    result = runner.invoke(app, [*args, "--joint", "--out", str(tmp_path / "gen")])
    assert result.exit_code == 0, result.output
    views = [iio.imread(tmp_path / "gen" / f"view_0{i}.mp4", plugin="pyav").astype(float) for i in range(1, 5)]
    assert all(v.shape == (2, 16, 16, 3) for v in views)
    assert min(abs(a - b).mean() for i, a in enumerate(views) for b in views[i + 1:]) > 0.5
    # only with --joint
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--views-per-group" in result.output and "--joint" in result.output
