"""Prompts and classifier-free guidance on a Wan2.1 stand-in (text encoder, tokenizer, UniPC scheduler)."""

import pytest
import torch

from mvtrack.pipelines import MultiViewPipeline


@pytest.fixture(scope="module")
def wan21_pipe(wan21_root):
    pipe = MultiViewPipeline.from_model(wan21_root)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():  # tiny random weights barely read the text: make the cross-attention count
        for block in pipe.transformer.wan.blocks:
            block.attn2.to_out[0].weight.mul_(20)
    return pipe


def _cameras(views=2, frames=5):
    w2c = torch.eye(4).expand(1, views, frames, 4, 4).clone()
    w2c[:, 1, :, 0, 3] = 0.3
    K = torch.tensor([[20.0, 0, 7.5], [0, 20.0, 7.5], [0, 0, 1]]).expand(1, views, frames, 3, 3)
    return w2c, K


def run(pipe, **kw):
    w2c, K = _cameras()
    kw = {"observed": "joint", "height": 16, "width": 16, "num_inference_steps": 2, **kw}
    return pipe(w2c, K, generator=torch.Generator().manual_seed(0), **kw).video


def count_calls(pipe):
    calls = []
    forward = pipe.transformer.forward
    pipe.transformer.forward = lambda *a, **k: calls.append(1) or forward(*a, **k)
    return calls


def test_a_wan21_root_loads_its_unipc_scheduler_and_text_encoder(wan21_pipe, wan21_root):
    from diffusers import UniPCMultistepScheduler

    assert isinstance(wan21_pipe.scheduler, UniPCMultistepScheduler)
    assert wan21_pipe.scheduler.config.flow_shift == 3.0 and wan21_pipe.text is not None
    # a shift given to from_model changes the shift, not the solver (it used to fall back to Euler)
    shifted = MultiViewPipeline.from_model(wan21_root, shift=5.0).scheduler
    assert isinstance(shifted, UniPCMultistepScheduler) and shifted.config.flow_shift == 5.0


def test_two_prompts_give_different_videos(wan21_pipe):
    cat, dog = run(wan21_pipe, prompt="a cat"), run(wan21_pipe, prompt="a dog")
    assert cat.shape == (1, 2, 5, 3, 16, 16)
    assert (cat - dog).abs().max() > 1e-3
    torch.testing.assert_close(run(wan21_pipe, prompt="a cat"), cat, rtol=0, atol=0)
    assert (run(wan21_pipe, prompt=["a cat"]) - cat).abs().max() == 0  # a list of one per clip


def test_guidance_1_is_the_unguided_call_and_guidance_runs_the_model_twice(wan21_pipe):
    calls = count_calls(wan21_pipe)
    plain = run(wan21_pipe, prompt="a cat", guidance_scale=1.0)
    assert len(calls) == 2  # one forward per step
    ignored = run(wan21_pipe, prompt="a cat", guidance_scale=1.0, negative_prompt="a dog")
    torch.testing.assert_close(ignored, plain, rtol=0, atol=0)
    calls.clear()
    guided = run(wan21_pipe, prompt="a cat", negative_prompt="a dog", guidance_scale=5.0)
    assert len(calls) == 4 and (guided - plain).abs().max() > 1e-3
    # uncond == cond: uncond + 5 (cond - uncond) is cond, bit for bit
    same = run(wan21_pipe, prompt="a cat", negative_prompt="a cat", guidance_scale=5.0)
    torch.testing.assert_close(same, plain, rtol=0, atol=0)
    # the default is Wan's guidance 5 against the empty prompt
    torch.testing.assert_close(run(wan21_pipe, prompt="a cat"),
                               run(wan21_pipe, prompt="a cat", negative_prompt="", guidance_scale=5.0), rtol=0, atol=0)


def test_guidance_combines_as_wan_pipeline_does(wan21_pipe):
    pipe = wan21_pipe
    text = pipe.text
    g = torch.Generator().manual_seed(1)
    sample, camera = torch.randn(1, 2, 2, 4, 2, 2, generator=g), torch.randn(1, 2, 2, 6, 2, 2, generator=g)
    t = torch.full((1, 2, 2), 700.0)
    cond, uncond = text.encode("a cat"), text.encode("")
    with torch.no_grad():
        c = pipe.transformer(sample, t, camera, cond).sample
        u = pipe.transformer(sample, t, camera, uncond).sample
        v = pipe.predict(sample, t, camera, cond, uncond, 3.0, {})
    torch.testing.assert_close(v, u + 3.0 * (c - u))


def test_text_free_models_refuse_prompts_and_guidance_and_sample_as_before():
    torch.manual_seed(0)
    pipe = MultiViewPipeline.from_model("tiny")
    pipe.set_progress_bar_config(disable=True)
    w2c, K = _cameras(frames=2)
    kw = {"observed": "joint", "height": 16, "width": 16, "num_inference_steps": 2}
    with pytest.raises(ValueError, match="prompt: this model has no text encoder"):
        pipe(w2c, K, prompt="a cat", **kw)
    with pytest.raises(ValueError, match="guidance_scale: classifier-free guidance needs a text encoder"):
        pipe(w2c, K, guidance_scale=5.0, **kw)
    calls = count_calls(pipe)
    a = pipe(w2c, K, generator=torch.Generator().manual_seed(0), **kw).video
    b = pipe(w2c, K, generator=torch.Generator().manual_seed(0), guidance_scale=1.0, **kw).video
    assert len(calls) == 4 and torch.equal(a, b)  # the null context, one forward per step


def test_prompt_errors_are_named(wan21_pipe):
    with pytest.raises(ValueError, match="prompt: expected one prompt or 1"):
        run(wan21_pipe, prompt=["a", "b"])
    with pytest.raises(ValueError, match="prompt, prompt_embeds: give one"):
        run(wan21_pipe, prompt="a", prompt_embeds=torch.zeros(1, 4, 16))
    with pytest.raises(ValueError, match=r"prompt_embeds: expected \(1, S, 16\)"):
        run(wan21_pipe, prompt_embeds=torch.zeros(1, 4, 8), guidance_scale=1.0)
