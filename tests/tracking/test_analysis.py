import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.models import build_model
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.tracking.analysis import NO_MOTION, attention_scores, merge_scores
from mvtrack.tracking.zero_shot import feature_tracks, no_motion_tracks, score_feature_tracks

runner = CliRunner(env={"COLUMNS": "300"})
STILL = SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=48, dynamic_prob=0.0,
                    camera_motions=("static",))


def test_attention_scores_rows_and_the_no_motion_reference():
    clip = render_clips(STILL, [clip_seed(0, 0, "val")])
    scores = attention_scores(build_model("tiny").eval(), clip, num_pairs=64)
    assert sorted({s.layer for s in scores}) == [NO_MOTION, 0, 1]
    assert {s.kind for s in scores} == {"temporal", "cross_view", "cross_view_time", "all"}
    for s in scores:
        assert 0 <= s.pck1 <= s.pck2 <= s.pck4 <= 1 and 0 <= s.cycle <= 1
    ref = {s.kind: s for s in scores if s.layer == NO_MOTION}
    assert ref["temporal"].pck1 == 1.0  # static cameras and scene: nothing moves over time
    assert ref["all"].pairs == sum(ref[k].pairs for k in ("temporal", "cross_view", "cross_view_time")) > 0
    merged = merge_scores([scores, scores])
    assert merged[0].pairs == 2 * scores[0].pairs and merged[0].pck2 == pytest.approx(scores[0].pck2)


def test_feature_tracks_shapes_queries_and_scoring():
    clip = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=24), [clip_seed(0, 1, "test")])
    model = build_model("tiny", refiner_block=0).eval()
    for features in ("qk", "refined"):
        tracks, visible, first = feature_tracks(model, clip, features)
        assert tracks.shape == (2, 4, 24, 2) and visible.shape == (2, 4, 24)
        gt = clip.tracks[0].numpy()
        for v in range(2):
            for n in np.nonzero(first[v] >= 0)[0]:
                assert np.allclose(tracks[v, first[v, n], n], gt[v, first[v, n], n]) and visible[v, first[v, n], n]
    perfect = score_feature_tracks(clip, clip.tracks[0].numpy(), clip.visible[0].numpy())
    assert perfect["AJ"] == pytest.approx(1.0) and perfect["delta_avg"] == pytest.approx(1.0)
    still = render_clips(STILL, [clip_seed(0, 2, "test")])
    assert score_feature_tracks(still, *no_motion_tracks(still))["delta_avg"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no Track4Gen refiner"):
        feature_tracks(build_model("tiny"), clip, "refined")


def test_analyze_layers_and_track_features_commands(tmp_path):
    result = runner.invoke(app, ["analyze-layers", "--model", "tiny", "--clips", "1", "--frames", "4", "--size", "32",
                                 "--pairs", "32", "--out", str(tmp_path / "layers")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "layers" / "layers.json").read_text())
    assert {s["layer"] for s in data["scores"]} == {NO_MOTION, 0, 1}
    assert (tmp_path / "layers" / "layers.png").stat().st_size > 0 and "no motion" in result.output
    result = runner.invoke(app, ["track-features", "--model", "tiny", "--clips", "1",
                                 "--out", str(tmp_path / "z.json")])
    assert result.exit_code == 0, result.output
    assert set(json.loads((tmp_path / "z.json").read_text())["scores"]) == {"tiny", "no motion (reference)"}
    result = runner.invoke(app, ["track-features", "--model", "tiny", "--features", "refined", "--clips", "1"])
    assert result.exit_code == 2 and "no Track4Gen refiner" in result.output
