"""The real-footage benchmark on a folder of RealEstate10K-format clips: frames left out of a static scene's
source are the truth of their cameras."""

import json

import pytest
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.geometry import write_re10k
from mvtrack.runners.bench import BenchRun
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames, write_mp4

runner = CliRunner(env={"COLUMNS": "300"})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Two static engine scenes filmed by an orbiting camera, written as <id>.mp4 + <id>.txt at 48 x 72 (3:2)."""
    root = tmp_path_factory.mktemp("re10k")
    cfg = SynthConfig(views=1, frames=12, height=48, width=72, num_tracks=8, dynamic_prob=0.0,
                      camera_motions=("orbit",))
    for i in range(2):
        clip = render_clips(cfg, [clip_seed(5, i, "test")])
        write_mp4(root / f"scene{i}.mp4", to_uint8_frames(clip.video[0, 0]))
        write_re10k(root / f"scene{i}.txt", clip.w2c[0, 0], clip.K[0, 0], 48, 72, url="https://example.com/x")
    (root / "notes.txt").write_text("a text file without a video is not a clip\n")
    return root


def _config(tmp_path, folder, task="near", **extra):
    config = tmp_path / f"{task}.yaml"
    split = {"name": f"real-{task}", "root": str(folder), "task": task, "frames": 12, "height": 32, "width": 32, **extra}
    config.write_text(json.dumps({"split": split, "methods": [{"name": "ground_truth"}, {"name": "copy_source"},
                                                              {"name": "nearest_source"}, {"name": "stereo_splat"}]}))
    return config


@pytest.mark.parametrize("task", ["near", "far"])
def test_real_split_scores_references_and_a_model(tmp_path, folder, task):
    out = tmp_path / "out"
    result = runner.invoke(app, ["bench", "--config", str(_config(tmp_path, folder, task)), "--checkpoint", "tiny",
                                 "--steps", "1", "--out", str(out), "--no-cameras", "--matcher", "sift"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "summary.json").read_text())
    assert list(rows) == ["ground_truth", "copy_source", "nearest_source", "stereo_splat", "tiny"]
    assert all(r["views_scored"] == 2 and not r["skipped"] for r in rows.values())  # truth never skipped
    psnr = {k: r["metrics"]["psnr"]["mean"] for k, r in rows.items()}
    assert psnr["ground_truth"] > 40  # the truth scored as a prediction (one more H.264 pass)
    assert psnr["stereo_splat"] > max(psnr["copy_source"], psnr["nearest_source"])  # geometry, no learning, beats copies
    assert "epi_1px" in rows["stereo_splat"]["metrics"]
    gt = out / "gt" / f"real-{task}"
    assert sorted(p.name for p in gt.iterdir() if p.is_dir()) == ["scene0", "scene1"]
    meta = json.loads((gt / "scene0" / "meta.json").read_text())
    expected = ([0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]) if task == "near" else ([0, 1, 2, 3, 4, 5],
                                                                                   [6, 7, 8, 9, 10, 11])
    assert (meta["source_frames"], meta["target_frames"]) == expected
    assert (out / "contact_sheet.png").is_file() and "Split `real-" in (out / "summary.md").read_text()


def test_real_split_config_errors_name_the_key(tmp_path, folder):
    for extra, message in [({"task": "sideways"}, "task: expected one of ('near', 'far', 'own')"),
                           ({"frames": 2}, "frames: expected an integer >= 4"),
                           ({"colour": "red"}, "a real-footage split takes keys among")]:
        with pytest.raises((ValueError, TypeError), match=message.replace("(", r"\(").replace(")", r"\)")):
            BenchRun.from_yaml(_config(tmp_path, folder, **extra))
    result = runner.invoke(app, ["bench", "--config", str(_config(tmp_path, tmp_path / "nowhere")), "--out",
                                 str(tmp_path / "o")])
    assert result.exit_code == 2 and "nowhere: not a directory" in result.output
    result = runner.invoke(app, ["bench", "--config", str(_config(tmp_path, folder)), "--method", "depth_warp",
                                 "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nearest_source" in result.output  # a synthetic-only row, named
