import pytest
import torch
from diffusers import WanTransformer3DModel
from einops import rearrange

from mvtrack.models import PRESETS, MultiViewTransformer, build_model, camera_condition
from mvtrack.scenes import SynthConfig, render_clips


def inputs(B=2, V=2, F=3, H=16, W=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(B, V, F, 3, H, W, generator=g)
    timestep = torch.rand(B, V, F, generator=g) * 1000
    camera = torch.randn(B, V, F, 6, H, W, generator=g)
    return sample, timestep, camera


def test_tiny_forward_backward():
    model = build_model("tiny")
    sample, timestep, camera = inputs()
    out = model(sample, timestep, camera).sample
    assert out.shape == sample.shape
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # the zero-initialised camera projections still receive gradient, so the branch can learn
    assert model.camera_encoder.block_proj[0].weight.grad.abs().sum() > 0


def test_camera_branch_is_a_no_op_at_init():
    model = build_model("tiny").eval()
    sample, timestep, camera = inputs()
    with torch.no_grad():
        a = model(sample, timestep, camera).sample
        b = model(sample, timestep, torch.randn_like(camera) * 10).sample
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_matches_plain_wan_forward():
    """With zero camera branch and one timestep per sample, the wrapper computes exactly Wan's forward over the
    views concatenated along frames."""
    model = build_model("tiny").eval()
    sample, _, camera = inputs()
    t = torch.tensor([100.0, 700.0])
    context = torch.randn(2, 5, PRESETS["tiny"]["text_dim"])
    with torch.no_grad():
        ours = model(sample, t[:, None, None].expand(2, 2, 3), camera, encoder_hidden_states=context).sample
        wan = model.wan(rearrange(sample, "b v f c h w -> b c (v f) h w"), t, context).sample
    torch.testing.assert_close(ours, rearrange(wan, "b c (v f) h w -> b v f c h w", v=2), rtol=1e-5, atol=1e-5)


def test_each_frame_is_modulated_by_its_own_timestep():
    """With attention silenced (no token sees another), frame (b, v, f) under per-frame timesteps must come out
    exactly as when every frame has its timestep: fails when the timesteps reach the tokens in another order (e.g.
    ``(n f)`` for ``(f n)``), which a test of "view 1 changed" does not see."""
    model = build_model("tiny").eval()
    for block in model.wan.blocks:
        for attn in (block.attn1, block.attn2):
            attn.to_out[0].weight.data.zero_()
            attn.to_out[0].bias.data.zero_()
    sample, _, camera = inputs()
    B, V, F = sample.shape[:3]
    timestep = (torch.arange(B * V * F).reshape(B, V, F) * 83 % 1000).float()  # distinct per view and frame
    with torch.no_grad():
        out = model(sample, timestep, camera).sample
        for b, v, f in zip(*(i.flatten().tolist() for i in torch.meshgrid(*map(torch.arange, (B, V, F)),
                                                                        indexing="ij"))):
            alone = model(sample, torch.full_like(timestep, timestep[b, v, f].item()), camera).sample
            torch.testing.assert_close(out[b, v, f], alone[b, v, f], rtol=1e-5, atol=1e-5)


def test_rope_length_is_checked_with_one_line():
    """Wan's RoPE table has rope_max_seq_len positions per axis; views x frames beyond it must be a ValueError
    naming the limit, not an error deep inside diffusers."""
    model = build_model("tiny").eval()
    limit = model.wan.config.rope_max_seq_len
    sample, timestep, camera = inputs(B=1, V=2, F=limit // 2 + 1, H=4, W=4)
    with pytest.raises(ValueError, match=f"{limit + 2} frames .*rope_max_seq_len {limit}") as e:
        model(sample, timestep, camera)
    assert "\n" not in str(e.value)
    with torch.no_grad():  # at the limit: runs
        model(sample[:, :, : limit // 2], timestep[:, :, : limit // 2], camera[:, :, : limit // 2])


def test_shape_errors_name_the_argument():
    model = build_model("tiny")
    sample, timestep, camera = inputs()
    with pytest.raises(ValueError, match="timestep: expected"):
        model(sample, timestep[:, :1], camera)
    with pytest.raises(ValueError, match="camera: expected"):
        model(sample, timestep, camera[..., :8, :])
    with pytest.raises(ValueError, match="multiples of the patch"):
        model(sample[..., :15, :15], timestep, camera[..., :15, :15])
    with pytest.raises(ValueError, match="temporal patch 1"):
        MultiViewTransformer({**PRESETS["tiny"], "patch_size": (2, 4, 4)})
    with pytest.raises(ValueError, match="model preset"):
        build_model("XL")


def test_preset_sizes():
    count = {name: sum(p.numel() for p in build_model(name).parameters()) for name in ("tiny", "S")}
    assert count["tiny"] < 100_000
    assert 10e6 <= count["S"] <= 20e6


def test_camera_condition_is_relative_to_the_first_camera():
    clip = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), [5])
    rays = camera_condition(clip.w2c, clip.K, (16, 16), (8, 8))
    assert rays.shape == (1, 2, 2, 6, 8, 8)
    # moving the whole world rigidly leaves the condition unchanged
    shift = torch.eye(4)
    shift[:3, 3] = torch.tensor([3.0, -1.0, 2.0])
    moved = camera_condition(clip.w2c @ torch.linalg.inv(shift), clip.K, (16, 16), (8, 8))
    torch.testing.assert_close(rays, moved, atol=1e-4, rtol=1e-4)
    # the reference camera itself sits at the origin: its moments are zero
    assert rays[0, 0, 0, :3].abs().max() < 1e-5
    with pytest.raises(ValueError, match="K: expected"):
        camera_condition(clip.w2c, clip.K[:, :1], (16, 16), (8, 8))
    bad = clip.w2c.clone()
    bad[0, 0, 0, :3, :3] *= 2
    with pytest.raises(ValueError, match="w2c"):
        camera_condition(bad, clip.K, (16, 16), (8, 8))


def test_from_wan_keeps_the_backbone_and_zeroes_the_camera_branch():
    wan = WanTransformer3DModel(**PRESETS["tiny"])
    model = MultiViewTransformer.from_wan(wan)
    for k, v in wan.state_dict().items():
        torch.testing.assert_close(model.wan.state_dict()[k], v, rtol=0, atol=0)
    assert all(p.abs().sum() == 0 for p in model.camera_encoder.block_proj.parameters())


def test_sample_prediction_returns_the_velocity_of_its_x0():
    """prediction_type='sample': the network's output is x_0 and forward returns (x_t - x_0) / sigma."""
    torch.manual_seed(0)
    velocity_model = build_model("tiny").eval()
    sample_model = build_model("tiny", prediction_type="sample").eval()
    sample_model.load_state_dict(velocity_model.state_dict())  # same network, different reading of its output
    x, t, camera = inputs()
    t[0, 0, 0] = 0.0  # an observed frame: sigma clamps at min_sigma
    with torch.no_grad():
        x0 = velocity_model(x, t, camera).sample
        v = sample_model(x, t, camera).sample
    sigma = (t / 1000).clamp_min(0.05)[..., None, None, None]
    torch.testing.assert_close(v, (x - x0) / sigma, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="prediction_type"):
        build_model("tiny", prediction_type="epsilon")


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    a = build_model("tiny")
    b = build_model("tiny")
    b.load_state_dict(a.state_dict())
    b.enable_gradient_checkpointing()
    assert b.gradient_checkpointing and b.wan.gradient_checkpointing
    sample, timestep, camera = inputs()
    for model in (a, b):
        model(sample, timestep, camera).sample.square().mean().backward()
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
