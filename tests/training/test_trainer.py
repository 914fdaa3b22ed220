import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mvtrack.models import load_model
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.training import EMA, TrainConfig, Trainer, find_checkpoint
from mvtrack.training.checkpoint import read_weights
from mvtrack.training.data import TrainBatches

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"


def tiny_config(tmp_path, *overrides):
    return TrainConfig.from_yaml(TINY, [f"output_dir={tmp_path}", "log_every=2", *overrides])


def params(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_resume_is_exact(tmp_path, train_killed_at):
    """A run killed during step 7 (last checkpoint at 4) and resumed ends with exactly the weights of an
    uninterrupted 8-step run, EMA included."""
    full = Trainer(tiny_config(tmp_path / "full", "max_steps=8", "checkpoint_every=4"))
    full.train()
    train_killed_at(Trainer(tiny_config(tmp_path / "split", "max_steps=8", "checkpoint_every=4")), 6)
    resumed = Trainer(tiny_config(tmp_path / "split", "max_steps=8", "checkpoint_every=4"))
    assert resumed.start_step == 4
    resumed.train()
    a, b = params(full.unwrapped), params(resumed.unwrapped)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    for k, v in full.ema.shadow.items():
        torch.testing.assert_close(v, resumed.ema.shadow[k], rtol=0, atol=0)
    # and the run did train: the weights moved
    fresh = load_model("tiny")[0].state_dict()
    assert any((fresh[k] - a[k]).abs().max() > 0 for k in a)


def test_outputs_and_checkpoint_layout(tmp_path):
    cfg = tiny_config(tmp_path, "max_steps=6", "checkpoint_every=2", "keep_checkpoints=2")
    Trainer(cfg).train()
    root = tmp_path / "checkpoints"
    assert sorted(p.name for p in root.glob("step_*")) == ["step_000004", "step_000006"]
    assert (root / "latest").read_text() == "step_000006"
    assert not list(root.glob(".tmp-*"))
    assert find_checkpoint(tmp_path) == root / "step_000006"
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6] and all(x["loss"] > 0 for x in lines)
    # final/ holds the EMA weights in a directory load_model reads
    model, _ = load_model(tmp_path / "final")
    ema, _ = read_weights(root / "step_000006")
    for k, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), ema[k], rtol=0, atol=0)


def test_broken_latest_is_a_clear_error(tmp_path):
    root = tmp_path / "checkpoints"
    root.mkdir(parents=True)
    (root / "latest").write_text("step_000010")
    with pytest.raises(FileNotFoundError, match="not a complete checkpoint"):
        Trainer(tiny_config(tmp_path))


def test_tiny_model_overfits_one_clip(tmp_path, monkeypatch):
    """One clip with one noise draw, repeated: the tiny model memorises it and the loss falls tenfold."""
    from mvtrack.training import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "step_generator", lambda *args: torch.Generator().manual_seed(0))
    cfg = tiny_config(
        tmp_path,
        "max_steps=150",
        "checkpoint_every=1000",
        "lr=3.0e-3",
        "warmup_steps=10",
        "data.height=16",
        "data.width=16",
        "data.frames=2",
        "lr_schedule=constant",
        "tasks={rerender: 1.0}",
        "log_every=10",
    )
    trainer = Trainer(cfg)
    clip = trainer.batches.get(0)
    trainer.batches.get = lambda step, micro=0: clip
    trainer.train()
    losses = [json.loads(x)["loss"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] / 10, losses


def test_ranks_and_micro_steps_read_disjoint_clips():
    data = TrainConfig().data
    seen = []
    for rank in range(2):
        batches = TrainBatches(data, batch_size=3, grad_accum=2, rank=rank, world=2)
        for step in range(3):
            for micro in range(2):
                seen += batches.clip_indices(step, micro)
    assert sorted(seen) == list(range(36))


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown keys \\['bacth_size'\\]"):
        TrainConfig.from_yaml(TINY, ["bacth_size=2"])
    with pytest.raises(ValueError, match="data: unknown keys"):
        TrainConfig.from_yaml(TINY, ["data.hieght=3"])
    with pytest.raises(ValueError, match="TrainConfig.tasks"):
        TrainConfig.from_yaml(TINY, ["tasks={teleport: 1.0}"])
    with pytest.raises(ValueError, match="TrainConfig.max_steps"):
        TrainConfig.from_yaml(TINY, ["max_steps=0"])
    with pytest.raises(FileNotFoundError, match="no file"):
        TrainConfig.from_yaml(tmp_path / "none.yaml")


def test_ema_follows_the_parameters():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, decay=0.5)
    with torch.no_grad():
        lin.weight.add_(1.0)
    before = ema.shadow["weight"].clone()
    ema.update(lin)  # decay min(0.5, 2/11)
    torch.testing.assert_close(ema.shadow["weight"], before + (1 - 2 / 11) * 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("extra", [[], [  # LoRA on a frozen bf16 backbone, a partial checkpoint, a conditioner
    "trainable=lora", "lora.rank=2", "weight_dtype=bfloat16", "mixed_precision=bf16",
    "track2view.conditioner={blocks: [0]}"]], ids=["all", "lora"])
def test_two_processes_on_gloo(tmp_path, extra):
    """`accelerate launch --config_file configs/accelerate/ddp.yaml` with two CPU processes (gloo): both ranks train in
    sync and checkpoint, also with LoRA on a frozen bf16 backbone."""
    script = tmp_path / "run.py"
    script.write_text(
        "import sys, torch\n"
        "from mvtrack.training import TrainConfig, Trainer\n"
        f"cfg = TrainConfig.from_yaml({str(TINY)!r}, ['output_dir=' + sys.argv[1], 'max_steps=4', 'checkpoint_every=2',"
        f" *{extra!r}])\n"
        "t = Trainer(cfg)\n"
        "t.train()\n"
        "acc = t.accelerator\n"
        "flat = torch.cat([p.detach().flatten() for p in t.unwrapped.parameters()])\n"
        "gathered = acc.gather(flat[None])\n"
        "if acc.is_main_process:\n"
        "    print('WORLD', acc.num_processes, acc.state.backend, float((gathered[0] - gathered[1]).abs().max()))\n"
        "acc.end_training()\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs" / "accelerate" / "ddp.yaml"), "--num_processes", "2", "--mixed_precision", "no",
           str(script), str(tmp_path / "run")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if done.returncode != 0 and "terminate called without an active exception" in done.stderr:
        # a rank aborted in gloo's teardown after end_training (seen once in 5 full-suite runs, 2-core AMD EPYC,
        # 2026-12-03; never in isolation): run once more from scratch, every assertion below still applies
        shutil.rmtree(tmp_path / "run", ignore_errors=True)
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("WORLD"))
    _, world, backend, diff = line.split()
    assert (world, backend, float(diff)) == ("2", "gloo", 0.0)
    assert (tmp_path / "run" / "checkpoints" / "latest").read_text() == "step_000004"


def test_export_checkpoint_half_precision(tmp_path):
    trainer = Trainer(tiny_config(tmp_path / "run", "max_steps=2", "checkpoint_every=2"))
    trainer.train()
    from mvtrack.training import export_checkpoint

    out = export_checkpoint(tmp_path / "run", tmp_path / "half", torch.float16)
    model, _ = load_model(out)
    assert model.dtype == torch.float32
    ema = trainer.ema.shadow
    kept = set()
    for k, p in model.named_parameters():  # the modules Wan keeps in float32 are stored in float32: exact
        exact = keeps_fp32(model, k)
        kept |= {k} if exact else set()
        torch.testing.assert_close(p.detach(), ema[k] if exact else ema[k].half().float(), rtol=0, atol=0)
    assert "wan.scale_shift_table" in kept and not any(ema[k].equal(ema[k].half().float()) for k in kept)
    assert json.loads((out / "mvtrack.json").read_text())["steps"] == 2
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        export_checkpoint(tmp_path / "nothing", tmp_path / "x")


def test_shard_batches_follow_the_clip_stream(tmp_path):
    """Shard data unshuffled: micro-batch (step, micro, rank) holds clips k of the sorted shard stream, cycling, also
    when the reader starts mid-stream (as after a resume)."""
    from mvtrack.data import write_shards
    from mvtrack.scenes import SynthConfig, render_clips

    clips = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), list(range(5))).unbatch()
    write_shards(clips, tmp_path / "shards", clips_per_shard=2)
    data = TrainConfig(
        data={"source": str(tmp_path / "shards"), "views": 1, "frames": 2, "height": 16, "width": 16, "shuffle": False}
    ).data
    seeds = [c.meta["seed"] for c in clips]
    rank1 = TrainBatches(data, batch_size=2, grad_accum=1, rank=1, world=2)
    assert [c["seed"] for c in rank1.get(0).meta] == seeds[2:4]
    assert [c["seed"] for c in rank1.get(1).meta] == [seeds[1], seeds[2]]  # clips 6, 7 wrap to 1, 2
    fresh = TrainBatches(data, batch_size=2, grad_accum=1, rank=0, world=2)
    batch = fresh.get(1)
    assert [c["seed"] for c in batch.meta] == [seeds[4], seeds[0]] and batch.video.shape == (2, 1, 2, 3, 16, 16)
    wrong = TrainConfig(data={"source": str(tmp_path / "shards"), "height": 32, "width": 32, "frames": 2}).data
    with pytest.raises(ValueError, match="size 32x32"):
        TrainBatches(wrong, batch_size=1, grad_accum=1).get(0)


def test_trains_in_wan_latent_space(tmp_path, wan_root):
    """The real path's training loop: a Wan2.1-style root (transformer + VAE), 5-frame clips -> 2 latent frames."""
    root, _ = wan_root
    cfg = tiny_config(tmp_path, f"model={root}", "max_steps=2", "data.frames=5", "checkpoint_every=2")
    trainer = Trainer(cfg)
    metrics = trainer.train()
    assert metrics["step"] == 2 and metrics["loss"] > 0
    model, codec = load_model(tmp_path / "final")  # transformer/ beside a copy of the VAE
    assert model.in_channels == 4 and codec.channels == 4


def test_track_supervision_trains_in_wan_latent_space(tmp_path, wan_root):
    """MVTrack4Gen's L_corr / L_track and Track4Gen's refiner on a Wan2.1-style latent model: tracks move to the
    latent grid (latent frame k holds video frame 4k, 8x8 pixels per cell) and every tracking part trains."""
    root, _ = wan_root
    cfg = tiny_config(tmp_path, f"model={root}", "max_steps=2", "data.frames=5", "data.height=64", "data.width=64",
                      "data.num_tracks=64", "checkpoint_every=2", "tracking.layers=[0, 1]", "tracking.refiner_block=1",
                      "tracking.pairs=16")
    trainer = Trainer(cfg)
    clip = trainer.batches.get(0)
    tracks, visible = trainer.model_tracks(clip)
    assert tracks.shape == (2, 2, 2, 64, 2)  # 5 video frames -> latent frames 0 and 1 (video frames 0 and 4)
    torch.testing.assert_close(tracks[:, :, 1], (clip.tracks[:, :, 4] + 0.5) / 8 - 0.5)
    assert torch.equal(visible[:, :, 1], clip.visible[:, :, 4])
    head = {k: v.clone() for k, v in trainer.supervision.head.state_dict().items()}
    refiner = {k: v.clone() for k, v in trainer.unwrapped.refiner.state_dict().items()}
    _, parts = trainer.micro_step(0, 0)
    assert {"corr", "track", "refiner"} <= set(parts) and all(torch.isfinite(v) for v in parts.values())
    trainer.optimizer.zero_grad()  # that probe step's gradients are not the run's
    trainer.train()
    assert any((head[k] - v).abs().max() > 0 for k, v in trainer.supervision.head.state_dict().items())
    assert any((refiner[k] - v).abs().max() > 0 for k, v in trainer.unwrapped.refiner.state_dict().items()
               if v.is_floating_point())


def test_export_keeps_the_trained_buffers(tmp_path):
    """A paper-style Track4Gen refiner's BatchNorm running statistics reach final/ (the EMA holds parameters only)."""
    cfg = tiny_config(tmp_path, "max_steps=2", "checkpoint_every=2", "data.num_tracks=64",
                      "tracking={refiner_block: 1, refiner_style: paper, refiner_weight: 0.5}")
    Trainer(cfg).train()
    _, trained = read_weights(tmp_path / "checkpoints" / "step_000002")
    final = load_file(tmp_path / "final" / "diffusion_pytorch_model.safetensors")
    stats = [k for k in trained if k.endswith("running_mean")]
    assert stats and any(trained[k].abs().sum() > 0 for k in stats)
    for k in stats:
        torch.testing.assert_close(final[k], trained[k])
