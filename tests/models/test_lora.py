import pytest
import torch

from mvtrack.models import build_model
from mvtrack.models.lora import LORA_TARGETS, add_lora, has_lora, lora_target_names, merge_lora


def _inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    sample = torch.randn(1, 2, 2, 3, 16, 16, generator=g)
    timestep = torch.full((1, 2, 2), 400.0)
    camera = torch.randn(1, 2, 2, 6, 16, 16, generator=g)
    return sample, timestep, camera


def test_fresh_adapters_are_a_no_op_on_the_wan_blocks_only():
    torch.manual_seed(0)
    model = build_model("tiny").eval()
    x = _inputs()
    with torch.no_grad():
        before = model(*x).sample
    wrapped = lora_target_names(model, LORA_TARGETS)
    names = add_lora(model, rank=2)
    with torch.no_grad():
        after = model(*x).sample
    assert torch.equal(before, after)  # lora_B starts at zero
    assert len(wrapped) == 2 * (8 + 2)  # per block: q, k, v, out of attn1 and attn2, and the two FFN layers
    assert all(n.startswith("wan.blocks.") for n in names) and len(names) == 2 * len(wrapped)
    assert not any("camera_encoder" in n for n in names)
    with pytest.raises(ValueError, match="already has LoRA"):
        add_lora(model, rank=2)


def test_merging_gives_the_adapted_model_with_plain_names():
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    keys = set(plain.state_dict())
    model = build_model("tiny").eval()
    model.load_state_dict(plain.state_dict())
    add_lora(model, rank=2, alpha=4.0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1)  # as training would move them
        x = _inputs(1)
        adapted = model(*x).sample
        merged = merge_lora(model)(*x).sample
    assert not has_lora(model) and set(model.state_dict()) == keys
    assert not torch.allclose(adapted, plain(*x).sample)
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-5)


def test_a_target_that_names_nothing_is_an_error():
    with pytest.raises(ValueError, match="lora.targets: 'to_qq' names no linear layer"):
        add_lora(build_model("tiny"), rank=2, targets=["to_qq"])
    with pytest.raises(ValueError, match="lora.rank"):
        add_lora(build_model("tiny"), rank=0)
