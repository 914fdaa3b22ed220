"""Track2View learns from its tracks: true paired tracks train measurably better than shuffled ones."""

import pytest
import torch

from mvtrack.data import PairedTracks, source_depth_tracks
from mvtrack.models import PRESETS, MultiViewTransformer, camera_condition
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.training.flow import add_noise, flow_loss


def _train(clip, tracks: PairedTracks, steps: int = 60) -> float:
    torch.manual_seed(0)
    # tiny, but wide enough (96 > 4*4*3) for a token to hold its patch's pixels
    model = MultiViewTransformer(dict(PRESETS["tiny"], attention_head_dim=48, ffn_dim=192), prediction_type="sample",
                                 track_conditioner=dict(blocks=[0, 1], width=32, layers=1, heads=2, bands=3,
                                                        skip=True))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x0 = clip.video * 2 - 1
    camera = camera_condition(clip.w2c, clip.K, clip.size, clip.size)
    observed = torch.zeros(x0.shape[:3], dtype=torch.bool)
    observed[:, 0] = True
    inputs = tracks.model_inputs()
    for step in range(steps):
        x_t, t, target = add_noise(x0, observed, 3.0, torch.Generator().manual_seed(step))
        loss = flow_loss(model(x_t, t, camera, **inputs).sample, target, observed, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # held-out noise at high noise level, where the generated view must come from the condition
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1234))
    t = torch.where(observed, 0.0, 900.0)
    x_t = torch.where(observed[..., None, None, None], x0, 0.1 * x0 + 0.9 * noise)
    with torch.no_grad():
        return flow_loss(model(x_t, t, camera, **inputs).sample, noise - x0, observed, t).item()


@pytest.mark.slow
def test_shuffled_tracks_train_worse_than_true_tracks():
    # two static scenes whose source-depth splat is far closer to the target than their mean colour (squared
    # error 0.028 and 0.017 against 0.167 and 0.036): there, the tracks carry what the target looks like
    clip = render_clips(SynthConfig(views=2, frames=3, height=48, width=48, num_tracks=1024, query_view=0,
                                    baseline="small", dynamic_prob=0.0), [clip_seed(5, i) for i in (4, 6)])
    true = source_depth_tracks(clip)
    perm = torch.randperm(true.num_tracks, generator=torch.Generator().manual_seed(0))
    shuffled = true.tracks.clone()
    shuffled[:, 1] = true.tracks[:, 1][..., perm, :]  # each source point sent to another point's target
    visible = true.visible.clone()
    visible[:, 1] = true.visible[:, 1][..., perm]
    wrong = PairedTracks(shuffled, true.depth, visible, 0)
    loss_true, loss_wrong = _train(clip, true), _train(clip, wrong)
    assert loss_true < 0.8 * loss_wrong, (loss_true, loss_wrong)


def test_trainer_gives_tracks_to_rerendering_samples_only_and_trains_the_conditioner_faster(tmp_path):
    from pathlib import Path

    from mvtrack.training import TrainConfig, Trainer

    tiny = Path(__file__).resolve().parents[2] / "configs" / "camera_only_tiny.yaml"
    config = TrainConfig.from_yaml(tiny, [
        f"output_dir={tmp_path}", "data.num_tracks=64", "data.query_view=0", "data.height=16", "data.width=16",
        "data.frames=2", "track2view.conditioner={blocks: [0], width: 16, layers: 1, heads: 2, bands: 2}",
        "track2view.dropout=0.0", "track2view.min_fraction=1.0", "track2view.lr_scale=10.0"])
    trainer = Trainer(config)
    lrs = sorted(group["initial_lr"] for group in trainer.optimizer.optimizer.param_groups)
    assert lrs == [config.lr, config.lr * 10]
    clip = trainer.batches.get(0)
    observed = torch.zeros(clip.video.shape[:3], dtype=torch.bool)
    observed[0, 0] = True  # sample 0 re-renders; sample 1 generates everything (joint): no tracks for it
    paired = trainer.paired_tracks(clip, observed, torch.Generator().manual_seed(0))
    truth = source_depth_tracks(clip)
    assert paired.visible[0].sum() == truth.visible[0].sum() > 0  # all kept (min_fraction 1, no dropout)
    assert not paired.visible[1].any()
    order = torch.argsort(paired.tracks[0, 0, 0, :, 0] * 1000 + paired.tracks[0, 0, 0, :, 1])
    assert torch.allclose(paired.tracks[0, 0, 0][order],  # the same tracks, shuffled
                          truth.tracks[0, 0, 0][torch.argsort(truth.tracks[0, 0, 0, :, 0] * 1000 +
                                                              truth.tracks[0, 0, 0, :, 1])])
