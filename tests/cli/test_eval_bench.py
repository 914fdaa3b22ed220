import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.runners.bench import BenchConfig, write_ground_truth, write_predictions
from mvtrack.runners.evaluate import EvalSettings, evaluate_dirs
from mvtrack.viz import read_video, write_mp4

runner = CliRunner(env={"COLUMNS": "300"})  # rich wraps error panels at the terminal width
SPLIT = dict(name="tiny", views=3, frames=6, height=48, width=48, num_tracks=24,
             groups=[{"name": "static-small", "clips": 2, "baseline": "small", "dynamic": False},
                     {"name": "dynamic-wide", "clips": 1, "baseline": "wide", "dynamic": True}])


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    cfg = BenchConfig(**SPLIT)
    gt = write_ground_truth(cfg, root / "gt")
    preds = {m: write_predictions(cfg, root / m, m) for m in ("ground_truth", "noise")}
    return cfg, gt, preds


def test_split_layout_and_reuse(split):
    cfg, gt, _ = split
    clips = sorted(p.name for p in gt.iterdir() if p.is_dir())
    assert clips == ["clip_0000", "clip_0001", "clip_0002"]
    files = sorted(p.name for p in (gt / "clip_0002").iterdir())
    assert files == ["annotations.npz", "meta.json", "view_0.mp4", "view_0.txt", "view_1.mp4", "view_1.txt",
                     "view_2.mp4", "view_2.txt"]
    assert json.loads((gt / "clip_0002" / "meta.json").read_text())["group"] == "dynamic-wide"
    assert json.loads((gt / "clip_0000" / "meta.json").read_text())["dynamic"] is False
    with np.load(gt / "clip_0000" / "annotations.npz") as a:
        assert a["depth"].shape == (3, 6, 48, 48) and a["tracks"].shape == (3, 6, 24, 2)
    stamp = (gt / "clip_0000" / "view_0.mp4").stat().st_mtime_ns
    write_ground_truth(cfg, gt)  # same config: kept, not re-rendered
    assert (gt / "clip_0000" / "view_0.mp4").stat().st_mtime_ns == stamp


def test_ground_truth_scores_near_perfect_and_noise_near_chance(split):
    _, gt, preds = split
    settings = EvalSettings(matcher="sift", cameras=False)
    truth = evaluate_dirs(preds["ground_truth"], gt, settings).summary
    noise = evaluate_dirs(preds["noise"], gt, settings).summary
    m, n = truth["metrics"], noise["metrics"]
    assert truth["views_scored"] == 6 and truth["views_skipped"] == 0
    assert m["psnr"]["mean"] > 35 and m["ssim"]["mean"] > 0.97  # identical files (inf), or one more H.264 pass
    assert n["psnr"]["mean"] < 12 and n["ssim"]["mean"] < 0.1
    assert m["warp_psnr"]["mean"] > n["warp_psnr"]["mean"] + 10
    assert m["AJ"]["mean"] > n["AJ"]["mean"] + 0.3 and m["track_epe"]["mean"] < n["track_epe"]["mean"]
    assert m["flicker"]["mean"] > n["flicker"]["mean"] + 0.1
    assert truth["pose_auc"]["pairs"] == 6 * 6


def test_cameras_are_estimated_or_their_failure_counted(split):
    _, gt, preds = split
    result = evaluate_dirs(preds["ground_truth"], gt, EvalSettings(matcher="sift", tracks=False))
    failures = result.summary["camera_failures"]
    assert failures["attempted"] == 6
    assert failures["failed"] == sum(r.camera_failure is not None for r in result.records)
    for r in result.records:
        assert (r.camera_failure is None) == ("mRotErr" in r.metrics)


def test_a_metric_that_raises_costs_that_metric_not_the_view(split, monkeypatch):
    """An estimator meeting a degenerate case on one processor and not another must not change which views count."""
    import mvtrack.runners.evaluate as evaluate

    _, gt, preds = split

    def degenerate(*args, **kwargs):
        raise RuntimeError("degenerate minimal sample")

    monkeypatch.setattr(evaluate, "pose_errors", degenerate)
    result = evaluate_dirs(preds["ground_truth"], gt, EvalSettings(matcher="sift", cameras=False, tracks=False))
    assert result.summary["views_scored"] == 6 and not result.skipped
    assert all(r.metric_failures == {"pose": "RuntimeError: degenerate minimal sample"} for r in result.records)
    assert result.summary["metric_failures"]["pose"]["failed"] == 6
    assert all("psnr" in r.metrics and "epi_1px" in r.metrics for r in result.records)  # the rest is scored


def test_eval_cli_names_bad_files_skips_them_and_scores_the_rest(split, tmp_path):
    _, gt_src, preds = split
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    shutil.copytree(gt_src, gt)
    shutil.copytree(preds["ground_truth"], pred)
    (gt / "clip_0000" / "view_1.txt").unlink()
    (pred / "clip_0000" / "view_2.mp4").write_bytes(b"not an mp4 at all")
    frames = read_video(pred / "clip_0001" / "view_1.mp4")
    write_mp4(pred / "clip_0001" / "view_1.mp4", frames[:4])
    write_mp4(pred / "clip_0001" / "view_2.mp4", np.zeros((6, 32, 32, 3), np.uint8))
    result = runner.invoke(app, ["eval", "--pred", str(pred), "--gt", str(gt), "--out", str(tmp_path / "ev"),
                                 "--matcher", "sift", "--no-cameras"])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "ev" / "results.json").read_text())
    reasons = {(s["clip"], s["view"]): s["reason"] for s in data["skipped"]}
    assert "view_1.txt: camera file missing" in reasons[("clip_0000", 1)]
    assert "view_2.mp4: cannot be decoded" in reasons[("clip_0000", 2)]
    assert "(4, 48, 48, 3)" in reasons[("clip_0001", 1)] and "differs from the source" in reasons[("clip_0001", 1)]
    assert "(6, 32, 32, 3)" in reasons[("clip_0001", 2)]
    assert [(v["clip"], v["view"]) for v in data["views"]] == [("clip_0002", 1), ("clip_0002", 2)]
    assert data["summary"]["views_skipped"] == 4 and "skipped clip_0000 view 1" in result.output
    html = (tmp_path / "ev" / "report.html").read_text()
    assert "Skipped" in html and "camera file missing" in html
    for asset in ("clip_0002_v1.mp4", "clip_0002_v1.png", "clip_0002_v1_tracks.png", "clip_0002_v1_cameras.png"):
        assert f"assets/{asset}" in html and (tmp_path / "ev" / "assets" / asset).is_file()


def test_eval_cli_rejects_missing_directories(tmp_path):
    result = runner.invoke(app, ["eval", "--pred", str(tmp_path / "nope"), "--gt", str(tmp_path)])
    assert result.exit_code == 2 and "not a directory" in result.output


def test_bench_cli_runs_a_checkpoint_and_a_reference(tmp_path):
    config = tmp_path / "split.yaml"
    config.write_text(json.dumps({**SPLIT, "views": 2, "groups": SPLIT["groups"][:1]}))  # JSON is YAML
    result = runner.invoke(app, ["bench", "--config", str(config), "--method", "copy_source", "--checkpoint", "tiny",
                                 "--steps", "2", "--no-cameras", "--matcher", "sift", "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    for name in ("copy_source", "tiny"):
        data = json.loads((tmp_path / "b" / name / "results.json").read_text())
        assert data["summary"]["views_scored"] == 2 and data["summary"]["method"] == name
        assert (tmp_path / "b" / name / "report.html").is_file()
    assert "copy_source" in result.output and "tiny" in result.output


def test_bench_config_errors_are_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncolour: red\ngroups: [{name: a, clips: 1}]\n")
    result = runner.invoke(app, ["bench", "--config", str(bad), "--method", "noise"])
    assert result.exit_code == 2 and "colour" in result.output
    with pytest.raises(ValueError, match=r"BenchConfig.groups\[0\].baseline: expected one of"):
        BenchConfig(groups=[{"name": "a", "clips": 1, "baseline": "huge"}])
    result = runner.invoke(app, ["bench", "--config", str(bad), "--method", "magic"])
    assert result.exit_code == 2 and "ground_truth" in result.output
