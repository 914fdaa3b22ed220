import torch

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
