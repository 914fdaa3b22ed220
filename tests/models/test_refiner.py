import pytest
import torch

from mvtrack.models import MultiViewTransformer, build_model
from mvtrack.models.presets import PRESETS
from mvtrack.models.refiner import PaperRefiner, Refiner, RefinerFeedback, track4gen_trainable
from mvtrack.tracking import TokenGrid, refiner_loss


def _inputs(B=1, V=2, F=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, V, F, 3, size, size, generator=g)
    t = torch.rand(B, V, F, generator=g) * 1000
    cam = torch.randn(B, V, F, 6, size, size, generator=g)
    return x, t, cam


def test_paper_refiner_has_the_papers_layout():
    r = PaperRefiner(32)
    assert len(r.convs) == 8 and len(r.norms) == 7
    assert all(c.in_channels == c.out_channels == 32 and c.kernel_size == (3, 3) and c.stride == (1, 1)
               and c.padding == (1, 1) for c in r.convs)  # full width, 3x3, stride 1, padding 1
    assert all(isinstance(n, torch.nn.BatchNorm2d) for n in r.norms)
    centre = torch.zeros(32, 32, 3, 3)
    centre[range(32), range(32), 1, 1] = 1
    assert all(torch.equal(c.weight, centre) and not c.bias.any() for c in r.convs[:-1])  # Dirac
    assert not r.convs[-1].weight.any() and not r.convs[-1].bias.any()


@pytest.mark.parametrize("train", [True, False])
def test_paper_refiner_is_bit_exactly_the_identity_at_init(train):
    """Bit-exact (torch.equal), in train mode (BatchNorm on batch statistics) and in eval mode (running ones)."""
    h = torch.randn(6, 32, 4, 5) * 3
    r = PaperRefiner(32).train(train)
    assert torch.equal(r(h), h)
    assert torch.equal(RefinerFeedback(32, style="paper").train(train)(h)[0], h)


def test_paper_feedback_leaves_model_outputs_unchanged_at_init():
    torch.manual_seed(0)
    plain = build_model("tiny")
    refined = build_model("tiny", refiner_block=1, refiner_style="paper")
    assert isinstance(refined.refiner.refiner, PaperRefiner) and refined.config.refiner_style == "paper"
    refined.load_state_dict(plain.state_dict(), strict=False)
    x, t, cam = _inputs()
    with torch.no_grad():
        for train in (True, False):
            plain.train(train), refined.train(train)
            assert torch.equal(plain(x, t, cam).sample, refined(x, t, cam).sample)
        plain.add_refiner(0, style="paper")  # added to a built model: outputs unchanged too
        assert plain.config.refiner_style == "paper" and isinstance(plain.refiner.refiner, PaperRefiner)
        assert torch.equal(plain(x, t, cam).sample, refined(x, t, cam).sample)
    with pytest.raises(ValueError, match="already has a 'paper' refiner"):
        plain.add_refiner(0, style="bottleneck")
    with pytest.raises(ValueError, match="refiner style"):
        RefinerFeedback(32, style="wide")


def test_bottleneck_stays_the_default_and_old_configs_load_it(tmp_path):
    model = build_model("tiny", refiner_block=0)
    assert isinstance(model.refiner.refiner, Refiner) and model.config.refiner_style == "bottleneck"
    model.save_pretrained(tmp_path / "m")
    config = MultiViewTransformer.load_config(tmp_path / "m")
    config.pop("refiner_style")  # as written before the option existed
    old = MultiViewTransformer.from_config(config)
    assert isinstance(old.refiner.refiner, Refiner)
    old.load_state_dict(model.state_dict())
    build_model("tiny").add_refiner(1)  # no style: the model's (bottleneck)


def test_gradients_reach_the_paper_refiner_from_its_loss_only():
    model = build_model("tiny", refiner_block=0, refiner_style="paper")
    x, t, cam = _inputs()
    model(x, t, cam).sample.square().mean().backward()  # a stand-in for the diffusion loss
    refiner = dict(model.refiner.refiner.named_parameters())
    assert all(p.grad is None for p in refiner.values())  # stop-gradient
    assert model.refiner.zero_conv.weight.grad.abs().sum() > 0
    grid = TokenGrid.of(model, 2, 3, 32, 32)
    src_f, dst_f = torch.tensor([[0, 1]]), torch.tensor([[3, 4]])
    uv = torch.tensor([[[2.0, 3.0], [5.0, 1.0]]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    for step in range(2):
        model.zero_grad()
        model(x, t, cam)
        refiner_loss(model.refined, grid, src_f, uv, dst_f, uv + 0.7, mask, radius=3.0, softargmax="eq3").backward()
        assert refiner["convs.7.weight"].grad.abs().sum() > 0
        if step == 0:  # the last conv starts at zero: the hidden layers learn once it has moved
            assert all(p.grad is None or not p.grad.any() for n, p in refiner.items() if not n.startswith("convs.7"))
            with torch.no_grad():
                refiner["convs.7.weight"].sub_(1e-3 * refiner["convs.7.weight"].grad.sign())
    assert all(p.grad.abs().sum() > 0 for n, p in refiner.items() if not n.startswith("convs.7")), \
        [n for n, p in refiner.items() if not p.grad.abs().sum() > 0]


def test_paper_refiner_batchnorm_in_train_and_eval():
    """Train mode normalises with batch statistics and advances the running ones; eval mode uses the running ones:
    per-sample (a clip alone gives what it gives in a batch) and saved with the model."""
    r = PaperRefiner(16)
    with torch.no_grad():
        r.convs[-1].weight.normal_(0, 0.1)  # a trained branch
        h = torch.randn(8, 16, 4, 4) * 2 + 1
        train_out = r(h)
    assert r.norms[0].num_batches_tracked == 1 and r.norms[0].running_mean.abs().sum() > 0
    r.eval()
    with torch.no_grad():
        both = r(h)
        assert not torch.allclose(both, train_out)
        torch.testing.assert_close(r(h[:4]), both[:4], rtol=0, atol=1e-6)
    assert "norms.0.running_var" in r.state_dict()


def test_track4gen_trainable_is_the_self_attention_and_the_refiner():
    model = build_model("tiny", refiner_block=0, refiner_style="paper")
    names = set(track4gen_trainable(model))
    every = dict(model.named_parameters())
    assert names == {n for n in every if ".attn1." in n or n.startswith("refiner.")}
    assert {"wan.blocks.1.attn1.to_q.weight", "refiner.zero_conv.weight", "refiner.refiner.convs.0.weight",
            "refiner.refiner.norms.6.weight"} <= names
    assert not any(".attn2." in n or ".ffn." in n or n.startswith(("camera_encoder.", "wan.patch_embedding"))
                   for n in names)
    assert PRESETS["tiny"]["num_layers"] == 2 and len([n for n in names if n.endswith("attn1.to_q.weight")]) == 2
