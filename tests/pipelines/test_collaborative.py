"""CVD's collaborative inference of N views with a model that sees fewer at a time, and epipolar models in the
pipeline."""

import pytest
import torch

from mvtrack.models import build_model
from mvtrack.pipelines import MultiViewPipeline, view_groups
from mvtrack.scenes import SynthConfig, render_clips


@pytest.fixture(scope="module")
def clip():
    return render_clips(SynthConfig(views=4, frames=2, height=16, width=16, num_tracks=4), [5])


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    model = build_model("tiny", epipolar={"mode": "module", "blocks": [0, 1], "band": 1.5})
    g = torch.Generator().manual_seed(1)
    for p in model.parameters():  # non-zero branches, as after training
        p.data += torch.randn(p.shape, generator=g) * 0.05
    p = MultiViewPipeline.from_model("tiny")
    p.transformer = model
    p.set_progress_bar_config(disable=True)
    return p


def _run(pipe, clip, views, **kw):
    return pipe(clip.w2c[:, views], clip.K[:, views], clip.video[:, views], "rerender", num_inference_steps=3,
                generator=torch.Generator().manual_seed(0), **kw).video


def test_groups_keep_observed_views_and_combine_the_generated_ones():
    obs = torch.zeros(1, 4, 2, dtype=torch.bool)
    obs[:, 0] = True
    assert view_groups(obs, None) == [[0, 1, 2, 3]]
    assert view_groups(obs, 3) == [[0, 1, 2, 3]]
    assert view_groups(obs, 2) == [[0, 1, 2], [0, 1, 3], [0, 2, 3]]
    assert view_groups(obs, 1) == [[0, 1], [0, 2], [0, 3]]
    assert view_groups(torch.zeros(1, 3, 2, dtype=torch.bool), 2) == [[0, 1], [0, 2], [1, 2]]
    i2v = torch.zeros(1, 4, 2, dtype=torch.bool)
    i2v[:, 0, 0] = True  # only view 0's first frame: view 0 still anchors every group
    assert view_groups(i2v, 1) == [[0, 1], [0, 2], [0, 3]]
    with pytest.raises(ValueError, match="views_per_group"):
        view_groups(obs, 0)


def test_collaborative_with_one_group_equals_the_pair_model(pipe, clip):
    """N generated views = the group size: exactly the joint model."""
    a = _run(pipe, clip, [0, 1, 2])
    b = _run(pipe, clip, [0, 1, 2], views_per_group=2)
    assert torch.equal(a, b)


def test_groups_of_one_are_independent_rerenders_of_each_target(pipe, clip):
    """With one target per group, each target is exactly its own (source, target) re-render from the same noise."""
    full = _run(pipe, clip, [0, 1, 2, 3], views_per_group=1)
    noise = torch.randn((1, 4, 2, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert full.shape == clip.video.shape
    for v in (1, 2, 3):
        # each target alone with the source, from the noise it gets in the 4-view draw
        pipe_noise = pipe.prepare_latents
        pipe.prepare_latents = lambda shape, generator, device, dtype, v=v: noise[:, [0, v]].to(device, dtype)
        try:
            alone = pipe(clip.w2c[:, [0, v]], clip.K[:, [0, v]], clip.video[:, [0, v]], "rerender",
                         num_inference_steps=3).video
        finally:
            pipe.prepare_latents = pipe_noise
        torch.testing.assert_close(full[:, v], alone[:, 1], atol=1e-5, rtol=1e-5)


def test_collaborative_views_influence_each_other(pipe, clip):
    """Groups of two generated views: changing view 3's camera changes view 1 (they share groups with view 2 and
    each other), while with groups of one it cannot."""
    moved = clip.w2c.clone()
    moved[:, 3, :, :3, 3] += 0.5
    def run(w2c, k):
        return pipe(w2c, clip.K, clip.video, "rerender", num_inference_steps=3,
                    generator=torch.Generator().manual_seed(0), views_per_group=k).video
    assert not torch.allclose(run(clip.w2c, 2)[:, 1], run(moved, 2)[:, 1])
    torch.testing.assert_close(run(clip.w2c, 1)[:, 1], run(moved, 1)[:, 1], atol=0, rtol=0)
