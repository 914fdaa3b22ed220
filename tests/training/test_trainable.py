"""What a run trains: ``trainable:`` presets, LoRA, frozen weights in bf16, partial checkpoints, prompts."""

from pathlib import Path

import pytest
import torch

from mvtrack.models import build_model
from mvtrack.models.lora import add_lora
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.models.refiner import track4gen_trainable
from mvtrack.training import TrainConfig, Trainer
from mvtrack.training.model import apply_trainable, trainable_names

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"


def tiny_config(tmp_path, *overrides):
    return TrainConfig.from_yaml(TINY, [f"output_dir={tmp_path}", "log_every=1", *overrides])


def _model(**kwargs):
    torch.manual_seed(0)
    return build_model("tiny", **kwargs)


def test_presets_name_the_papers_trainable_sets():
    model = _model(refiner_block=1)
    names = {n for n, _ in model.named_parameters()}
    camera = {n for n in names if n.startswith("camera_encoder.")}
    attn1 = {n for n in names if ".attn1." in n}
    refiner = {n for n in names if n.startswith("refiner.")}
    assert set(trainable_names(model, "all")) == names
    assert set(trainable_names(model, "recammaster")) == camera | attn1 | refiner | {"null_context"}
    assert set(trainable_names(model, "track4gen")) == set(track4gen_trainable(model)) == attn1 | refiner
    assert set(trainable_names(model, "track4gen", ["camera_encoder"])) == attn1 | refiner | camera
    with pytest.raises(ValueError, match="also_train: 'camera' is the prefix of no parameter"):
        trainable_names(model, "all", ["camera"])
    with pytest.raises(ValueError, match="no LoRA adapters"):
        trainable_names(model, "lora")
    with pytest.raises(ValueError, match="track2view .* no conditioner"):
        trainable_names(model, "track2view")
    lora = set(add_lora(model, rank=2))
    assert set(trainable_names(model, "lora")) == lora | camera | refiner | {"null_context"}
    assert set(trainable_names(model, "lora", text=True)) == lora | camera | refiner  # the null context is unused
    model = _model(track_conditioner={"blocks": [0]})
    lora = set(add_lora(model, rank=2))
    conditioner = {n for n, _ in model.named_parameters() if n.startswith("conditioner.")}
    camera = {n for n, _ in model.named_parameters() if n.startswith("camera_encoder.")}
    assert set(trainable_names(model, "track2view", text=True)) == lora | conditioner | camera


def test_frozen_weights_in_bf16_trained_ones_and_their_statistics_in_float32():
    model = _model(refiner_block=1, refiner_style="paper")
    names = trainable_names(model, "track4gen")
    apply_trainable(model, names, "bfloat16")
    for n, p in model.named_parameters():
        assert p.requires_grad == (n in names), n
        assert p.dtype == (torch.float32 if n in names or keeps_fp32(model, n) else torch.bfloat16), n
    assert model.wan.blocks[0].attn1.to_q.weight.dtype == torch.float32  # trained
    assert model.wan.blocks[0].attn2.to_q.weight.dtype == torch.bfloat16  # frozen
    assert model.wan.blocks[0].norm2.weight.dtype == torch.float32  # frozen, but Wan keeps it in float32
    assert model.refiner.refiner.norms[0].running_mean.dtype == torch.float32


def test_a_lora_run_saves_only_what_it_trains_and_resumes_exactly(tmp_path, train_killed_at):
    """LoRA on a frozen bf16 backbone: two steps move the adapters and the new modules only; checkpoints and the EMA
    hold exactly those (the base is rebuilt); a run killed in step 2 and resumed ends bit-identical; final/ merges."""
    args = ["trainable=lora", "lora.rank=4", "weight_dtype=bfloat16", "mixed_precision=bf16", "max_steps=2",
            "checkpoint_every=1", "gradient_checkpointing=true"]
    full = Trainer(tiny_config(tmp_path / "full", *args))
    model = full.unwrapped
    trained = set(full.trainable)
    assert trained == {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(".lora_A." in n for n in trained) and "camera_encoder.mlp.1.weight" in trained
    assert not any(n.startswith("wan.") and ".lora_" not in n for n in trained)
    assert set(full.ema.shadow) == trained
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    full.train()
    after = model.state_dict()
    moved = {n for n, _ in model.named_parameters() if not torch.equal(before[n], after[n])}
    assert moved and moved <= trained and any(".lora_B." in n for n in moved)
    from safetensors.torch import load_file

    from mvtrack.training.checkpoint import read_weights

    _, saved = read_weights(tmp_path / "full" / "checkpoints" / "step_000002")
    assert set(saved) == trained
    train_killed_at(Trainer(tiny_config(tmp_path / "split", *args)), 1)
    resumed = Trainer(tiny_config(tmp_path / "split", *args))
    assert resumed.start_step == 1
    resumed.train()
    for k, v in resumed.unwrapped.state_dict().items():
        torch.testing.assert_close(v, after[k], rtol=0, atol=0, msg=k)
    final = load_file(tmp_path / "full" / "final" / "diffusion_pytorch_model.safetensors")
    assert not any(".lora_" in k or ".base_layer." in k for k in final)  # merged into plain weights
    assert set(final) == set(build_model("tiny").state_dict())
    from mvtrack.training import export_checkpoint

    with pytest.raises(ValueError, match="base model 'tiny' is not a directory"):
        export_checkpoint(tmp_path / "full", tmp_path / "adapter", lora="adapter")


def test_bf16_weights_need_bf16_autocast(tmp_path):
    with pytest.raises(ValueError, match="weight_dtype: bfloat16 weights need mixed_precision bf16"):
        Trainer(tiny_config(tmp_path, "trainable=lora", "weight_dtype=bfloat16", "mixed_precision='no'"))


def test_captions_come_from_the_clip_or_the_default_and_some_are_dropped(tmp_path, wan21_root):
    from mvtrack.data import MultiViewClip

    cfg = tiny_config(tmp_path, f"model={wan21_root}", "data.frames=5", "text.dropout=0.5",
                      "text.default_caption=a synthetic scene")
    trainer = Trainer(cfg)
    assert trainer.text is not None and "null_context" not in trainer.trainable  # prompts replace the null context
    clip = trainer.batches.get(0)
    B = 64
    video = torch.zeros(B, 1, 1, 3, 4, 4)
    metas = [{"caption": "a red cube"} if i % 2 else {} for i in range(B)]
    batch = MultiViewClip(video=video, w2c=torch.eye(4).expand(B, 1, 1, 4, 4), K=torch.eye(3).expand(B, 1, 1, 3, 3),
                          tracks=torch.zeros(B, 1, 1, 1, 2), visible=torch.ones(B, 1, 1, 1, dtype=torch.bool),
                          meta=metas)
    captions = trainer.captions(batch, torch.Generator().manual_seed(0))
    assert captions == trainer.captions(batch, torch.Generator().manual_seed(0))  # a pure function of the step
    kept = [c for c in captions if c]
    assert 16 < len(kept) < 48 and set(kept) == {"a red cube", "a synthetic scene"}
    assert all(c in ("", "a red cube") for c, m in zip(captions, metas) if m)
    # the embeddings reach the model as its encoder_hidden_states
    seen = []
    forward = trainer.unwrapped.forward
    trainer.unwrapped.forward = lambda *a, **k: seen.append(a[3]) or forward(*a, **k)
    trainer.micro_step(0, 0)
    assert seen[0].shape == (clip.video.shape[0], 512, 16) and seen[0].abs().sum() > 0


def test_config_variants_inherit_their_base(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("model: tiny\ndata: {frames: 4, height: 32, width: 32}\nlora: {rank: 8}\n")
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "small.yaml").write_text("base: ../base.yaml\ndata: {frames: 2}\n")
    cfg = TrainConfig.from_yaml(tmp_path / "v" / "small.yaml")
    assert (cfg.data.frames, cfg.data.height, cfg.lora.rank) == (2, 32, 8)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(ValueError, match="loops back"):
        TrainConfig.from_yaml(tmp_path / "loop.yaml")
    (tmp_path / "gone.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(FileNotFoundError, match=r"no file at .*nowhere.yaml \(base: of"):
        TrainConfig.from_yaml(tmp_path / "gone.yaml")
