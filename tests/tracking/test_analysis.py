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


def test_feature_tracks_shapes_queries_and_scoring(monkeypatch):
    import torch
    from einops import rearrange

    from mvtrack.tracking import zero_shot

    clip = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=24), [clip_seed(0, 1, "test")])
    clip.visible[0, 0, :2, ::3] = clip.visible[0, 1, :1, 1::3] = False  # queries start in different frames
    gt, gt_visible = clip.tracks[0], clip.visible[0]  # (V, T, N, 2), (V, T, N)
    model = build_model("tiny", refiner_block=0).eval()
    for features in ("qk", "refined"):
        tracks, visible, first = feature_tracks(model, clip, features)
        assert tracks.shape == (2, 4, 24, 2) and visible.shape == (2, 4, 24)
        for v in range(2):
            for n in np.nonzero(first[v] >= 0)[0]:
                assert np.allclose(tracks[v, first[v, n], n], gt[v, first[v, n], n]) and visible[v, first[v, n], n]
    perfect = score_feature_tracks(clip, gt.numpy(), gt_visible.numpy())
    assert perfect["AJ"] == pytest.approx(1.0) and perfect["delta_avg"] == pytest.approx(1.0)
    still = render_clips(STILL, [clip_seed(0, 2, "test")])
    assert score_feature_tracks(still, *no_motion_tracks(still))["delta_avg"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no Track4Gen refiner"):
        feature_tracks(build_model("tiny"), clip, "refined")

    # Exactly trackable features: on 1x2-pixel tokens (rows x columns, so that a swapped axis shows), track n's code
    # splatted (Gaussian, 0.75 token) around its true position in every frame where it is visible; a tracker must
    # follow them well beyond the no-motion reference, and a garbage one must fall below it.
    class Planted(torch.nn.Module):
        """Stands in for a model whose refined features, and layer 0's queries and keys, are ``feats``."""

        patch_size = (1, 1, 2)

        def __init__(self, feats):  # (V, T, h, w, D)
            super().__init__()
            self.feats = torch.nn.Parameter(feats, requires_grad=False)
            self.refiner = torch.nn.Identity()

        def forward(self, x, timestep, camera):
            self.refined = rearrange(self.feats, "v t h w d -> (v t) d h w")

    class Capture:  # zero_shot's QKCapture on the stand-in: 2 heads
        def __init__(self, model, layers):
            assert layers == [0]
            self.model = model

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def qk(self, layer):
            x = rearrange(self.model.feats, "v t h w (k d) -> 1 (v t h w) k d", k=2)
            return x, x

    monkeypatch.setattr(zero_shot, "QKCapture", Capture)
    g = torch.Generator().manual_seed(0)
    codes = torch.nn.functional.normalize(torch.randn(24, 128, generator=g), dim=-1)
    du = (torch.arange(16) * 2 + 0.5 - gt[..., :1]) / 2  # (V, T, N, 16): to the token columns' centres, in tokens
    dv = torch.arange(32) - gt[..., 1:]  # (V, T, N, 32): to the rows'
    splat = torch.exp(-(dv[..., :, None] ** 2 + du[..., None, :] ** 2) / (2 * 0.75**2)) * gt_visible[..., None, None]
    feats = torch.einsum("vtnij,nd->vtijd", splat, codes) + 0.02 * torch.randn(2, 4, 32, 16, 128, generator=g)
    reference = score_feature_tracks(clip, *no_motion_tracks(clip))
    for features in ("qk", "refined"):
        score = score_feature_tracks(clip, *feature_tracks(Planted(feats), clip, features, layer=0)[:2])
        assert score["AJ"] > reference["AJ"] + 0.25 and score["delta_avg"] > reference["delta_avg"] + 0.25, features
        assert score["OA"] > 0.95, features  # occluded where the code is absent (cosine below the threshold)
    garbage = rearrange(feats, "v t h w d -> v t (h w) d")[:, :, torch.randperm(512, generator=g)].view_as(feats)
    score = score_feature_tracks(clip, *feature_tracks(Planted(garbage), clip, "refined")[:2])
    assert score["AJ"] < reference["AJ"] and score["delta_avg"] < reference["delta_avg"]


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


def _planted_qk(grid, num_tracks=6, heads=3, planted=1, dim=16, seed=0):
    """Q = K where head ``planted`` holds per-track codes at the tracks' tokens (its argmax is the true point) and
    the other heads hold noise. Returns qk (1, L, heads, dim), tracks (1, V, F, N, 2) pixels, visible."""
    import torch

    g = torch.Generator().manual_seed(seed)
    T = grid.views * grid.frames
    codes = torch.nn.functional.normalize(torch.randn(num_tracks, dim, generator=g), dim=-1) * 6.0
    qk = torch.randn(1, T * grid.per_frame, heads, dim, generator=g)
    qk[0, :, planted] *= 0.1
    tracks = torch.zeros(1, grid.views, grid.frames, num_tracks, 2)
    for t in range(T):
        tokens = torch.randperm(grid.per_frame, generator=g)[:num_tracks]
        qk[0, t * grid.per_frame + tokens, planted] = codes
        uv = torch.stack([tokens % grid.w, tokens // grid.w], -1).float()
        tracks[0, t // grid.frames, t % grid.frames] = grid.to_pixels(uv)
    return qk, tracks, torch.ones(tracks.shape[:-1], dtype=torch.bool)


def test_per_head_scores_rank_a_planted_head_first():
    import torch

    from mvtrack.data.pairs import PAIR_KINDS, sample_pairs
    from mvtrack.tracking import TokenGrid
    from mvtrack.tracking.analysis import MEAN_HEADS, qk_scores, rank_heads

    grid = TokenGrid(views=2, frames=2, h=6, w=6, ph=8, pw=8)
    qk, tracks, visible = _planted_qk(grid)
    pairs = sample_pairs(tracks, visible, 96, PAIR_KINDS, require_dst_visible=True,
                         generator=torch.Generator().manual_seed(0))
    src_f, dst_f = grid.frame_index(pairs.src_view, pairs.src_time), grid.frame_index(pairs.dst_view, pairs.dst_time)
    args = (grid, src_f, grid.to_grid(pairs.src_xy), dst_f, grid.to_grid(pairs.dst_xy), pairs.kind, pairs.valid)
    scores = qk_scores(qk, qk, *args, layer=3, per_head=True)
    assert len(scores) == 4 * 4 and {s.head for s in scores} == {MEAN_HEADS, 0, 1, 2}
    assert qk_scores(qk, qk, *args, layer=3) == [s for s in scores if s.head == MEAN_HEADS]
    ranked = rank_heads(scores)
    assert (ranked[0].layer, ranked[0].head) == (3, 1) and len(ranked) == 3
    assert ranked[0].pck1 == 1.0 and ranked[0].cycle == 1.0 and all(r.pck1 < 0.5 for r in ranked[1:])


def test_analyze_layers_per_head(tmp_path):
    from mvtrack.tracking.analysis import MEAN_HEADS

    clip = render_clips(STILL, [clip_seed(0, 0, "val")])
    model = build_model("tiny").eval()
    mean = attention_scores(model, clip, num_pairs=32)
    both = attention_scores(model, clip, num_pairs=32, per_head=True)
    assert [s for s in both if s.head == MEAN_HEADS] == mean  # per_head adds rows, changes none
    assert {(s.layer, s.head) for s in both} == {(NO_MOTION, MEAN_HEADS), *((la, h) for la in (0, 1)
                                                                            for h in (MEAN_HEADS, 0, 1))}
    result = runner.invoke(app, ["analyze-layers", "--model", "tiny", "--clips", "1", "--frames", "4", "--size", "32",
                                 "--pairs", "32", "--per-head", "--out", str(tmp_path / "layers")])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "layers" / "layers.json").read_text())
    assert {s["head"] for s in data["scores"]} == {MEAN_HEADS, 0, 1}
    assert (tmp_path / "layers" / "heads.png").stat().st_size > 0 and "heads as trackers" in result.output
