import json

import pytest
import torch

from mvtrack.models import MultiViewTransformer, WanVAECodec, build_model, load_model


def test_save_load_round_trip(tmp_path):
    model = build_model("tiny").eval()
    with torch.no_grad():
        for p in model.camera_encoder.block_proj.parameters():
            p.normal_()  # a trained camera branch must survive the round trip too
    model.save_pretrained(tmp_path / "m")
    loaded, codec = load_model(tmp_path / "m")
    assert codec.channels == 3
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)


def test_wan_root_with_vae_loads_in_latent_space(wan_root):
    """The real path: a Wan2.1-style diffusers root (transformer/ + vae/) with tiny random weights."""
    root, wan = wan_root
    model, codec = load_model(root)
    assert isinstance(model, MultiViewTransformer) and isinstance(codec, WanVAECodec)
    for k, v in wan.state_dict().items():
        torch.testing.assert_close(model.wan.state_dict()[k], v, rtol=0, atol=0)
    video = torch.rand(1, 2, 5, 3, 32, 32)
    z = codec.encode(video)
    assert z.shape == (1, 2, 2, 4, 4, 4)  # 1 + (5 - 1) / 4 latent frames, 8x smaller
    assert codec.camera_frames(5).tolist() == [0, 4]
    assert codec.decode(z).shape == video.shape
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        codec.encode(torch.rand(1, 1, 4, 3, 32, 32))


def test_missing_path_and_mismatched_weights_are_clear_errors(tmp_path, tiny_vae):
    with pytest.raises(FileNotFoundError, match="neither a preset .* nor an existing local directory"):
        load_model(tmp_path / "nowhere")
    build_model("tiny").save_pretrained(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    config["wan_config"]["ffn_dim"] = 96
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="do not load.*ffn.*shape"):
        load_model(tmp_path / "m")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json or a transformer/"):
        load_model(tmp_path / "empty")
    # a 3-channel (pixel) transformer beside a 4-channel VAE
    build_model("tiny").save_pretrained(tmp_path / "mixed" / "transformer")
    tiny_vae.save_pretrained(tmp_path / "mixed" / "vae")
    with pytest.raises(ValueError, match="takes 3 channels but the VAE latents have 4"):
        load_model(tmp_path / "mixed")


def test_wan_is_wrapped_without_a_copy_and_bf16_keeps_wans_float32_modules(wan_root):
    """``from_wan`` takes the loaded Wan as the backbone (no second build of its weights), and loading in bf16 keeps
    the modules Wan keeps in float32 (norms, time embedder, modulation tables) in float32, as diffusers does."""
    from diffusers import WanTransformer3DModel

    from mvtrack.models.pretrained import keeps_fp32

    root, _ = wan_root
    wan = WanTransformer3DModel.from_pretrained(root / "transformer", torch_dtype=torch.bfloat16)
    model = MultiViewTransformer.from_wan(wan)
    assert model.wan is wan
    model, _ = load_model(root, torch.bfloat16)
    kept = {n for n, _ in model.named_parameters() if keeps_fp32(model, n)}
    assert {"wan.scale_shift_table", "wan.blocks.0.scale_shift_table", "wan.blocks.0.norm2.weight",
            "wan.condition_embedder.time_embedder.linear_1.weight"} <= kept
    for n, p in model.named_parameters():
        assert p.dtype == (torch.float32 if n in kept else torch.bfloat16), n
    assert model.dtype == torch.bfloat16 and model.camera_encoder.mlp[1].weight.dtype == torch.bfloat16
    tiny, _ = load_model("tiny", torch.bfloat16)  # a preset follows the same rule
    assert tiny.wan.scale_shift_table.dtype == torch.float32 and tiny.wan.patch_embedding.weight.dtype == torch.bfloat16
    with torch.no_grad():  # and runs in bf16 without autocast
        out = model(torch.randn(1, 2, 2, 4, 4, 4, dtype=torch.bfloat16), torch.full((1, 2, 2), 500.0),
                    torch.randn(1, 2, 2, 6, 4, 4)).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_an_adapter_without_its_base_is_a_clear_error(tmp_path):
    d = tmp_path / "adapter"
    build_model("tiny").save_config(d)
    (d / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path / "gone"), "r": 2}))
    with pytest.raises(FileNotFoundError, match="base_model_name_or_path .*gone.* is not a directory"):
        load_model(d)


def test_a_bad_text_section_in_mvtrack_json_is_named(tmp_path):
    build_model("tiny").save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "mvtrack.json").write_text(json.dumps({"text": "a cat"}))
    with pytest.raises(ValueError, match="mvtrack.json: text: expected an object whose default_caption is a string"):
        load_model(tmp_path / "m")
