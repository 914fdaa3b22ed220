import pytest
import torch

from mvtrack.pipelines import MultiViewPipeline, observed_layout
from mvtrack.scenes import SynthConfig, render_clips


@pytest.fixture(scope="module")
def clip():
    return render_clips(SynthConfig(views=2, frames=3, height=16, width=16, num_tracks=4), [7])


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    p = MultiViewPipeline.from_model("tiny")
    p.set_progress_bar_config(disable=True)
    return p


def run(pipe, clip, seed=0, **kw):
    kw = {"video": clip.video, "observed": "rerender", "num_inference_steps": 3, **kw}
    return pipe(clip.w2c, clip.K, generator=torch.Generator().manual_seed(seed), **kw).video


def test_same_seed_same_samples(pipe, clip):
    a, b, c = run(pipe, clip, 0), run(pipe, clip, 0), run(pipe, clip, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a[:, 1] - c[:, 1]).abs().max() > 1e-3
    assert a.shape == clip.video.shape and 0 <= a.min() and a.max() <= 1


def test_observed_frames_are_kept_and_condition_the_rest(pipe, clip):
    out = run(pipe, clip)
    torch.testing.assert_close(out[:, 0], clip.video[:, 0], rtol=0, atol=0)
    other = clip.video.clone()
    other[:, 0] = 1 - other[:, 0]
    assert (run(pipe, clip, video=other)[:, 1] - out[:, 1]).abs().max() > 1e-4
    i2v = run(pipe, clip, observed="i2v")
    torch.testing.assert_close(i2v[:, 0, 0], clip.video[:, 0, 0], rtol=0, atol=0)


def test_layouts():
    assert observed_layout("rerender", 1, 3, 2)[0].tolist() == [[True, True], [False, False], [False, False]]
    assert observed_layout("i2v", 1, 2, 2).sum() == 1
    assert not observed_layout("joint", 1, 2, 2).any()
    with pytest.raises(ValueError, match="at least 2 views"):
        observed_layout("rerender", 1, 1, 2)
    with pytest.raises(ValueError, match="one of"):
        observed_layout("inpaint", 1, 2, 2)


def test_check_inputs_errors(pipe, clip):
    with pytest.raises(ValueError, match="K: expected"):
        pipe(clip.w2c, clip.K[:, :1], clip.video)
    with pytest.raises(ValueError, match="observed frames need pixels"):
        pipe(clip.w2c, clip.K, None, "rerender", height=16, width=16)
    bad = clip.video.clone()
    bad[0, 0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pipe(clip.w2c, clip.K, bad)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        pipe(clip.w2c, clip.K, clip.video * 255)
    with pytest.raises(ValueError, match="multiples of 4"):
        pipe(clip.w2c, clip.K, clip.video[..., :14, :14])
    with pytest.raises(ValueError, match="observed: expected a bool"):
        pipe(clip.w2c, clip.K, clip.video, torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(clip.w2c, clip.K, clip.video, num_inference_steps=0)


def test_latent_space_pipeline_with_wan_vae(wan_root):
    """The real path end to end with tiny random weights: Wan transformer + Wan VAE from a local root."""
    root, _ = wan_root
    pipe = MultiViewPipeline.from_model(root)
    pipe.set_progress_bar_config(disable=True)
    clip = render_clips(SynthConfig(views=2, frames=5, height=32, width=32, num_tracks=4), [3])
    out = pipe(
        clip.w2c, clip.K, clip.video, "i2v", num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).video
    assert out.shape == clip.video.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0, 0], clip.video[:, 0, 0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        pipe(clip.w2c[:, :, :4], clip.K[:, :, :4], clip.video[:, :, :4], "i2v")
