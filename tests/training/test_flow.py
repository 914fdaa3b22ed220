import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from einops import repeat

from mvtrack.models import build_model
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.training import add_noise, flow_loss, sample_observed, shifted_sigmas


def test_observed_frames_carry_no_noise_and_take_no_loss():
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 2, 4, 3, 8, 8, generator=g)
    observed = torch.zeros(3, 2, 4, dtype=torch.bool)
    observed[:, 0] = True
    observed[2, 1, 0] = True
    x_t, timestep, target = add_noise(x0, observed, 1.0, g)
    torch.testing.assert_close(x_t[observed], x0[observed], rtol=0, atol=0)
    assert (timestep[observed] == 0).all() and (timestep[~observed] > 0).all()
    assert (x_t[~observed] != x0[~observed]).any()
    pred = torch.randn_like(x0, requires_grad=True)
    loss = flow_loss(pred, target, observed)
    loss.backward()
    assert (pred.grad[observed] == 0).all() and (pred.grad[~observed] != 0).any()
    # the loss is the mean squared error over generated frames exactly
    expected = (pred.detach() - target)[~observed].square().mean()
    torch.testing.assert_close(loss.detach(), expected)


def test_noising_is_the_rectified_flow_interpolation():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(4, 1, 2, 3, 4, 4, generator=g)
    x_t, timestep, target = add_noise(x0, torch.zeros(4, 1, 2, dtype=torch.bool), 3.0, g)
    sigma = (timestep / 1000)[..., None, None, None]
    noise = target + x0
    torch.testing.assert_close(x_t, (1 - sigma) * x0 + sigma * noise)
    # one sigma per sample, shared by its generated frames
    assert (timestep[:, :, :1] == timestep).all()


def test_shift_and_layouts():
    u = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(shifted_sigmas(u, 1.0), u)
    torch.testing.assert_close(shifted_sigmas(u, 3.0), torch.tensor([0.0, 0.75, 1.0]))
    g = torch.Generator().manual_seed(0)
    rerender = sample_observed({"rerender": 1.0}, 2, 3, 4, g)
    assert rerender[:, 0].all() and not rerender[:, 1:].any()
    i2v = sample_observed({"i2v": 1.0}, 2, 3, 4, g)
    assert i2v[:, 0, 0].all() and i2v.sum() == 2
    assert not sample_observed({"joint": 1.0}, 2, 3, 4, g).any()
    mixed = sample_observed({"rerender": 1.0, "joint": 1.0}, 400, 2, 2, g)
    assert 150 < mixed[:, 0, 0].sum() < 250


def test_sample_space_loss_is_the_x0_error():
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(2, 2, 3, 3, 4, 4, generator=g)
    observed = torch.zeros(2, 2, 3, dtype=torch.bool)
    observed[:, 0] = True
    x_t, timestep, target = add_noise(x0, observed, 3.0, g)
    pred = torch.randn_like(x0)
    sigma = (timestep / 1000)[..., None, None, None]
    x0_hat = x_t - sigma * pred  # the clean frames a velocity implies
    expected = (x0_hat - x0)[~observed].square().mean()
    torch.testing.assert_close(flow_loss(pred, target, observed, timestep), expected)


def _oracle(height=16, width=16, seed=0):
    """The tiny model with ``prediction_type="sample"`` whose last layer is planted to output one known x0 (a
    pattern repeating every 4x4 patch) whatever its input, so that its velocity ``(x_t - x0) / sigma`` is exact for
    that x0 (above ``min_sigma``). Returns the model and x0 (3, H, W)."""
    model = build_model("tiny", prediction_type="sample").eval()
    _, ph, pw = model.patch_size
    patch = (torch.rand(ph, pw, 3, generator=torch.Generator().manual_seed(seed)) * 2 - 1) * 0.8
    with torch.no_grad():
        model.wan.proj_out.weight.zero_()
        model.wan.proj_out.bias.copy_(patch.flatten())  # the output's (ph pw c) order
    return model, repeat(patch, "ph pw c -> c (h ph) (w pw)", h=height // ph, w=width // pw)


def test_the_training_target_is_the_oracle_velocity_on_generated_frames_only():
    """Fails on a flipped sign anywhere between ``add_noise``'s target, the model's x0 -> velocity conversion and
    ``flow_loss``, and on a loss taken on observed frames (where the oracle is wrong by construction)."""
    model, x0_gen = _oracle()
    g = torch.Generator().manual_seed(0)
    x0 = x0_gen.expand(4, 2, 3, 3, 16, 16).clone()  # (B, V, F, C, H, W)
    observed = torch.zeros(4, 2, 3, dtype=torch.bool)
    observed[:, 0] = True
    observed[1, 1, 0] = True
    x0[observed] = torch.rand(int(observed.sum()), 3, 16, 16, generator=g) * 2 - 1  # not what the oracle predicts
    x_t, timestep, target = add_noise(x0, observed, 1.0, g)  # sigmas spread over (0, 1)
    assert (timestep[~observed] > 1.0).all()  # sigma well above min_sigma: the oracle is exact there
    with torch.no_grad():
        pred = model(x_t, timestep, torch.zeros(4, 2, 3, 6, 16, 16)).sample
    assert flow_loss(pred, target, observed) < 1e-8 and flow_loss(pred, target, observed, timestep) < 1e-8
    assert flow_loss(-pred, target, observed) > 1.0  # the loss sees the sign of the velocity
    assert flow_loss(pred, target, torch.zeros_like(observed)) > 1.0  # and would see the observed frames
    pred = (pred + 0.1 * torch.randn(pred.shape, generator=g)).requires_grad_()
    flow_loss(pred, target, observed, timestep).backward()
    assert (pred.grad[observed] == 0).all() and (pred.grad[~observed] != 0).all()


def test_the_sampler_integrates_the_oracle_velocity_onto_its_x0():
    """From noise, 4 Euler steps of the exact velocity land on x0 (the flow of a point mass is straight); with the
    velocity's sign flipped they run away from it. Fails on a sampler stepping the wrong way or at wrong sigmas."""
    model, x0 = _oracle()
    pipe = MultiViewPipeline(transformer=model, scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    clip = render_clips(SynthConfig(views=2, frames=3, height=16, width=16, num_tracks=4), [7])

    def sample():
        return pipe(clip.w2c, clip.K, clip.video, "rerender", num_inference_steps=4,
                    generator=torch.Generator().manual_seed(0)).video

    out, expected = sample(), ((x0 + 1) / 2).expand(1, 3, 3, 16, 16)
    torch.testing.assert_close(out[:, 1], expected, rtol=0, atol=1e-5)  # the generated view is x0
    torch.testing.assert_close(out[:, 0], clip.video[:, 0], rtol=0, atol=0)
    flip = model.register_forward_hook(lambda module, args, output: type(output)(sample=-output.sample))
    try:
        assert (sample()[:, 1] - expected).abs().mean() > 0.1
    finally:
        flip.remove()


def test_the_last_step_lands_on_x0_below_min_sigma():
    """25 steps at shift 1 end with an Euler step from sigma 0.04, below ``min_sigma`` (0.05): the sampler must
    still land on the model's x0 (with the clamped velocity it stopped 4/5 of the way, ~1/255 of noise left)."""
    model, x0 = _oracle()
    scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0)
    scheduler.set_timesteps(25)
    assert 0 < scheduler.sigmas[-2] < model.config.min_sigma  # the case of the bug
    pipe = MultiViewPipeline(transformer=model, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    clip = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), [7])
    out = pipe(clip.w2c, clip.K, clip.video, "rerender", num_inference_steps=25,
               generator=torch.Generator().manual_seed(0)).video
    torch.testing.assert_close(out[:, 1], ((x0 + 1) / 2).expand(1, 2, 3, 16, 16), rtol=0, atol=1e-5)
