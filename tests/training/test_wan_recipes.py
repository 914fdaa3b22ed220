"""The Wan2.1 fine-tuning recipes (configs/wan2.1-1.3b) on a tiny stand-in saved in the real diffusers layout:
each trains two steps as configured (bf16 frozen weights, bf16 autocast, gradient checkpointing, its trainable
set), exports, and the exported directory samples with the base's UniPC scheduler and prompts."""

import json
from pathlib import Path

import pytest
import torch

from mvtrack.models import load_model
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.training import TrainConfig, Trainer, export_checkpoint

RECIPES = Path(__file__).resolve().parents[2] / "configs" / "wan2.1-1.3b"
# what the 30-block, 480x832 recipes name that a 2-block, 64x64 stand-in lacks
FIT = {
    "camera_only": [],
    "mvtrack4gen": ["tracking.layers=[0, 1]", "tracking.pairs=16", "data.num_tracks=64"],
    "track2view": ["track2view.conditioner.blocks=[0, 1]", "data.num_tracks=128"],
    "cvd": [],
    "track4gen": ["tracking.refiner_block=1", "tracking.pairs=16", "tracking.refiner_radius=2", "data.num_tracks=64"],
}


def recipe_config(name, root, out, *overrides):
    size = 64 if name in ("mvtrack4gen", "track4gen") else 32  # tracking losses want more than 2x2 tokens a frame
    return TrainConfig.from_yaml(RECIPES / f"{name}.yaml", [
        f"model={root}", f"output_dir={out}", "max_steps=2", "checkpoint_every=2", "log_every=1", "batch_size=1",
        "data.frames=5", f"data.height={size}", f"data.width={size}", "lora.rank=4", "lora.alpha=4", *FIT[name],
        *overrides])


def test_every_recipe_is_the_published_setting_at_full_size():
    for name in FIT:
        for path in (RECIPES / f"{name}.yaml", RECIPES / "49f_320x576" / f"{name}.yaml"):
            cfg = TrainConfig.from_yaml(path)
            full = path.parent == RECIPES
            assert (cfg.data.views, cfg.data.frames, cfg.data.height, cfg.data.width) == (
                (2, 81, 480, 832) if full else (2, 49, 320, 576)), path
            assert cfg.weight_dtype == "bfloat16" and cfg.mixed_precision == "bf16" and cfg.gradient_checkpointing
            assert cfg.prediction_type == "velocity" and cfg.trainable != "all", path
    mv = TrainConfig.from_yaml(RECIPES / "mvtrack4gen.yaml").tracking
    assert (mv.corr_weight, mv.track_weight) == (0.01, 0.01)
    # L_corr on attention maps: each head's own softmax, not the head-averaged logits no head computes
    for path in (RECIPES / "mvtrack4gen.yaml", RECIPES / "49f_320x576" / "mvtrack4gen.yaml"):
        assert TrainConfig.from_yaml(path).tracking.corr_heads == "per_head", path
    t4g = TrainConfig.from_yaml(RECIPES / "track4gen.yaml")
    assert (t4g.tracking.refiner_weight, t4g.tracking.pairs, t4g.lr, t4g.trainable) == (8.0, 512, 1e-5, "track4gen")
    assert TrainConfig.from_yaml(RECIPES / "track2view.yaml").trainable == "track2view"
    assert TrainConfig.from_yaml(RECIPES / "camera_only.yaml").trainable == "recammaster"


@pytest.mark.parametrize("name", [
    "camera_only",  # the others are slow: test_a_lora_recipe_... trains track2view too
    pytest.param("mvtrack4gen", marks=pytest.mark.slow),
    pytest.param("track2view", marks=pytest.mark.slow),
    pytest.param("cvd", marks=pytest.mark.slow),
    pytest.param("track4gen", marks=pytest.mark.slow),
])
def test_recipe_trains_two_steps_exports_and_samples_with_unipc(name, wan21_root, tmp_path):
    from diffusers import UniPCMultistepScheduler

    cfg = recipe_config(name, wan21_root, tmp_path / "run")
    trainer = Trainer(cfg)
    model = trainer.unwrapped
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(p.dtype == (torch.float32 if keeps_fp32(model, n) else torch.bfloat16)
                          for n, p in model.named_parameters() if n in frozen)
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n not in frozen)
    assert model.gradient_checkpointing and trainer.text is not None
    metrics = trainer.train()
    assert metrics["step"] == 2 and all(torch.isfinite(torch.tensor(v)) for k, v in metrics.items() if k != "time")
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    final = tmp_path / "run" / "final"
    assert {p.name for p in final.iterdir()} >= {"transformer", "vae", "scheduler", "tokenizer", "text_encoder",
                                                 "mvtrack.json"}
    meta = json.loads((final / "mvtrack.json").read_text())
    assert meta["trainable"] == cfg.trainable and meta["text"]["default_caption"] == cfg.text.default_caption
    pipe = MultiViewPipeline.from_model(final)
    pipe.set_progress_bar_config(disable=True)
    assert isinstance(pipe.scheduler, UniPCMultistepScheduler) and pipe.text is not None
    assert pipe.default_prompt == cfg.text.default_caption
    w2c = torch.eye(4).expand(1, 2, 5, 4, 4).clone()
    w2c[:, 1, :, 0, 3] = 0.2
    K = torch.tensor([[30.0, 0, 15.5], [0, 30.0, 15.5], [0, 0, 1]]).expand(1, 2, 5, 3, 3)
    source = torch.rand(1, 2, 5, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    video = pipe(w2c, K, source, "rerender", num_inference_steps=2, guidance_scale=2.0,
                 generator=torch.Generator().manual_seed(0)).video
    assert video.shape == source.shape and torch.isfinite(video).all()


def test_a_lora_recipe_exports_merged_or_as_an_adapter_of_its_base(wan21_root, tmp_path):
    """The adapter (LoRA + trained modules, base referred to) and the merged export load to the same weights."""
    cfg = recipe_config("track2view", wan21_root, tmp_path / "run", "max_steps=1", "checkpoint_every=1")
    Trainer(cfg).train()
    merged = export_checkpoint(tmp_path / "run", tmp_path / "merged", lora="merge")
    adapter = export_checkpoint(tmp_path / "run", tmp_path / "adapter", lora="adapter")
    files = {p.name for p in (adapter / "transformer").iterdir()}
    assert files == {"config.json", "adapter_config.json", "adapter_model.safetensors"}
    small = (adapter / "transformer" / "adapter_model.safetensors").stat().st_size
    assert small < (merged / "transformer" / "diffusion_pytorch_model.safetensors").stat().st_size
    (a, _), (m, _) = load_model(adapter), load_model(merged)
    assert a.conditioner is not None and a.state_dict().keys() == m.state_dict().keys()
    for k, v in m.state_dict().items():
        torch.testing.assert_close(a.state_dict()[k], v, rtol=0, atol=0, msg=k)
    assert (merged / "text_encoder").is_symlink()  # 11 GiB for Wan2.1: referred to, not copied
    copied = export_checkpoint(tmp_path / "run", tmp_path / "copied", copy_text_encoder=True)
    assert (copied / "text_encoder").is_dir() and not (copied / "text_encoder").is_symlink()


@pytest.mark.slow
def test_the_cuda_smoke_script_runs_a_recipe_on_the_stand_in(wan21_root, tmp_path):
    """scripts/cuda_smoke.py is the first thing a GPU user runs: its steps (train, device and dtype checks, export,
    reload in bf16, guided sample) run here on the CPU so that it does not fail on its own bugs there."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("cuda_smoke", RECIPES.parents[1] / "scripts" / "cuda_smoke.py")
    smoke = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(smoke)
    row = smoke.train_and_sample(RECIPES / "cvd.yaml", str(wan21_root), tmp_path / "cvd", 2, 2, [
        "data.frames=5", "data.height=32", "data.width=32", "lora.rank=4", "batch_size=1"], device="cpu")
    assert row["scheduler"] == "UniPCMultistepScheduler" and row["sample_finite"] and row["loss"] > 0
