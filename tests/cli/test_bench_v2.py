"""Evaluation v2 (issue 11) at the command line: results tables from a config, joint splits, skipped clips, exit
codes, report sizes; and the bench name that used to delete directories (issue 13)."""

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.runners.bench import BenchConfig, BenchRun, write_ground_truth, write_predictions
from mvtrack.runners.evaluate import EvalSettings, evaluate_dirs

runner = CliRunner(env={"COLUMNS": "300"})
SPLIT = dict(name="tiny2", views=2, frames=4, height=48, width=48, num_tracks=16,
             groups=[{"name": "static-small", "clips": 2, "baseline": "small", "dynamic": False}])


@pytest.mark.parametrize("name", ["/tmp/victim", "../../victim", "..", ".hidden", "a/b", ""])
def test_bench_config_names_are_sanitised(tmp_path, name):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({**SPLIT, "name": name}))
    result = runner.invoke(app, ["bench", "--config", str(config), "--method", "noise", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "plain name" in result.output
    assert (victim / "keep.txt").read_text() == "precious"


def test_write_ground_truth_never_replaces_a_foreign_directory(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match="not a split written by mvtrack bench"):
        write_ground_truth(BenchConfig(**SPLIT), tmp_path / "mine")
    assert (tmp_path / "mine" / "keep.txt").is_file()


def test_results_table_from_a_config_with_seeds(tmp_path):
    (tmp_path / "split.yaml").write_text(json.dumps(SPLIT))
    config = tmp_path / "results.yaml"
    config.write_text(json.dumps({"split": "split.yaml", "methods": [
        {"name": "ground_truth"}, {"name": "copy_source"}, {"name": "noise"},
        {"name": "tiny-model", "model": "tiny", "seeds": [0, 1], "steps": 1, "sensitivity": True}]}))
    assert [m.name for m in BenchRun.from_yaml(config).methods] == ["ground_truth", "copy_source", "noise", "tiny-model"]
    out = tmp_path / "b"
    result = runner.invoke(app, ["bench", "--config", str(config), "--no-cameras", "--no-tracks", "--matcher", "sift",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = (out / "summary.md").read_text()
    assert "| ground_truth | 0 |" in table and "| tiny-model | 0,1 |" in table and "±" in table
    assert "epi_median_px" in table and "cam_sens_ratio" in table
    rows = json.loads((out / "summary.json").read_text())
    assert rows["tiny-model"]["seeds"] == [0, 1] and (out / "tiny-model" / "seed_1" / "report.html").is_file()
    m = {k: rows[k]["metrics"] for k in rows}
    assert m["ground_truth"]["psnr"]["mean"] > 35 > m["copy_source"]["psnr"]["mean"] > m["noise"]["psnr"]["mean"]
    assert m["ground_truth"]["epi_1px"]["mean"] > m["copy_source"]["epi_1px"]["mean"]
    assert m["tiny-model"]["cam_sens_ratio"]["n"] == 4  # 2 clips x 2 seeds


def test_joint_split_scores_pairs_of_generated_views(tmp_path):
    cfg = BenchConfig(**{**SPLIT, "name": "joint", "views": 3, "observed": "joint"})
    gt = write_ground_truth(cfg, tmp_path / "gt")
    settings = EvalSettings(matcher="sift", cameras=False, tracks=True, mode="joint")
    truth = evaluate_dirs(write_predictions(cfg, tmp_path / "t", "ground_truth"), gt, settings).summary
    copy = evaluate_dirs(write_predictions(cfg, tmp_path / "c", "copy_source"), gt, settings).summary
    assert truth["views_scored"] == 6 and truth["pairs_scored"] == 6  # 2 clips x 3 views; pairs (0,1) (0,2) (1,2)
    assert truth["pose_auc"]["pairs"] == 6 * 4
    assert truth["metrics"]["epi_1px"]["mean"] > copy["metrics"]["epi_1px"]["mean"]
    # cross-view track consistency: every pair scored, the truth's tracks agree across views better than a copy's
    assert truth["metrics"]["xtrack_1px"]["n"] == 6 and "xtrack_failures" not in truth
    assert truth["metrics"]["xtrack_1px"]["mean"] > copy["metrics"]["xtrack_1px"]["mean"]


def test_nan_tracks_skip_the_clip_and_eval_exits_non_zero_when_nothing_is_scored(tmp_path):
    cfg = BenchConfig(**SPLIT)
    gt = write_ground_truth(cfg, tmp_path / "gt")
    pred = write_predictions(cfg, tmp_path / "p", "ground_truth")
    path = gt / "clip_0000" / "annotations.npz"
    with np.load(path) as a:
        data = dict(a)
    data["tracks"][0, 0, 0] = np.nan
    np.savez(path, **data)
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "e"),
                                 "--matcher", "sift", "--no-cameras"])
    assert result.exit_code == 0, result.output
    out = json.loads((tmp_path / "e" / "results.json").read_text())
    assert [s["clip"] for s in out["skipped"]] == ["clip_0000"] and "tracks contains NaN" in out["skipped"][0]["reason"]
    assert [v["clip"] for v in out["views"]] == ["clip_0001"]
    shutil.rmtree(gt / "clip_0001")
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "e2"),
                                 "--matcher", "sift", "--no-cameras"])
    assert result.exit_code == 1 and "no view was scored" in result.output


def test_report_images_are_thumbnails_with_links_to_the_videos(tmp_path):
    import cv2

    from mvtrack.runners.report import MAX_SIDE, write_report
    from mvtrack.viz import write_mp4

    gt, pred = tmp_path / "gt" / "c", tmp_path / "pred" / "c"
    frames = np.random.default_rng(0).integers(0, 256, (3, 360, 640, 3), dtype=np.uint8)
    for d in (gt, pred):
        write_mp4(d / "view_1.mp4", frames)
    write_mp4(gt / "view_0.mp4", frames)
    from mvtrack.geometry import write_re10k
    import torch
    w2c = torch.eye(4).repeat(3, 1, 1)
    w2c[:, 0, 3] = torch.arange(3.0)
    K = torch.tensor([[500.0, 0, 319.5], [0, 500.0, 179.5], [0, 0, 1]]).repeat(3, 1, 1)
    for v in (0, 1):
        write_re10k(gt / f"view_{v}.txt", w2c, K, 360, 640)
    result = evaluate_dirs(tmp_path / "pred", tmp_path / "gt", EvalSettings(matcher="sift", cameras=False))
    html = write_report(result, tmp_path / "r").read_text()
    strip = cv2.imread(str(tmp_path / "r" / "assets" / "c_v1.png"))
    assert max(strip.shape[:2]) <= MAX_SIDE
    assert "../pred/c/view_1.mp4" in html and "../gt/c/view_1.mp4" in html
