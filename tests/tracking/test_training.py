import json
from pathlib import Path

import pytest
import torch

from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.tracking.analysis import attention_scores
from mvtrack.training import TrainConfig, Trainer
from mvtrack.training.sharded import read_full

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"
BOTH = "tracking={layers: [0], corr_weight: 0.5, track_weight: 0.5, pairs: 32, refiner_block: 1}"


def config(tmp_path, *overrides):
    return TrainConfig.from_yaml(TINY, [f"output_dir={tmp_path}", "log_every=2", "data.num_tracks=32", *overrides])


def test_supervised_training_logs_its_losses_and_resumes_exactly(tmp_path, train_killed_at):
    """MVTrack4Gen and Track4Gen together: the head is checkpointed beside the model, and a run killed at step 6
    and resumed from step 4 ends bit-identical to an uninterrupted one."""
    full = Trainer(config(tmp_path / "full", "max_steps=8", "checkpoint_every=4", BOTH))
    full.train()
    ckpt = tmp_path / "full" / "checkpoints" / "step_000008"
    head = read_full(ckpt / "state", "track_head")  # the head is checkpointed beside the model
    assert head.keys() == full.supervision.head.state_dict().keys()
    logged = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    for key in ("loss_diffusion", "loss_corr", "loss_track", "loss_refiner"):
        assert key in logged[-1] and logged[-1][key] > 0, key
    total = logged[-1]["loss"]
    assert total == pytest.approx(sum(logged[-1][k] for k in logged[-1] if k.startswith("loss_")), rel=1e-5)

    train_killed_at(Trainer(config(tmp_path / "split", "max_steps=8", "checkpoint_every=4", BOTH)), 6)
    resumed = Trainer(config(tmp_path / "split", "max_steps=8", "checkpoint_every=4", BOTH))
    assert resumed.start_step == 4
    resumed.train()
    for a, b in ((full.unwrapped, resumed.unwrapped), (full.supervision.head, resumed.supervision.head)):
        sa, sb = a.state_dict(), b.state_dict()
        for k in sa:
            torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)
    exported = (tmp_path / "full" / "final" / "config.json").read_text()
    assert '"refiner_block": 1' in exported  # the refiner is part of the generator


@pytest.mark.slow
def test_corr_loss_teaches_the_supervised_layer_to_track(tmp_path):
    """150 steps of a tiny model on wide-baseline clips, with and without L_corr on layer 1: the supervised run's
    attention argmax finds the true point far more often (held-out val clips)."""
    clips = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=64, baseline="wide"),
                         [clip_seed(0, i, "val") for i in range(8)])
    pck = {}
    for weight in (0.0, 1.0):
        cfg = config(tmp_path / str(weight), "max_steps=150", "checkpoint_every=1000", "log_every=50", "lr=3e-3",
                     "ema_decay=0.0", "data.baseline=wide", "data.num_tracks=64",
                     f"tracking={{layers: [1], corr_weight: {weight}, track_weight: 0.0, pairs: 64}}")
        trainer = Trainer(cfg, resume=False)
        trainer.train()
        scores = attention_scores(trainer.unwrapped.eval(), clips, layers=[1], num_pairs=128)
        pck[weight] = next(s for s in scores if s.layer == 1 and s.kind == "all")
    assert pck[1.0].pck1 > pck[0.0].pck1 + 0.2 and pck[1.0].pck2 > pck[0.0].pck2 + 0.2
    assert pck[1.0].cycle > pck[0.0].cycle + 0.3


def test_fine_tunes_a_saved_model_with_a_refiner_added(tmp_path):
    """Track4Gen on top of an existing checkpoint (the experiment's setting): the refiner is added to the loaded
    model, checkpoints save (the loaded config carries a path), and the export loads with its refiner."""
    from mvtrack.models import build_model, load_model

    build_model("tiny").save_pretrained(tmp_path / "base")
    cfg = config(tmp_path / "run", f"model={tmp_path / 'base'}", "max_steps=2", "checkpoint_every=1",
                 "tracking={refiner_block: 0, pairs: 16}")
    Trainer(cfg).train()
    model, _ = load_model(tmp_path / "run" / "final")
    assert model.config.refiner_block == 0 and model.refiner is not None
