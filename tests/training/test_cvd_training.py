"""CVD in the trainer: epipolar attention added to a camera-only model, hybrid pseudo-view data, exact resume."""

import math
from pathlib import Path

import pytest
import torch

from mvtrack.geometry import camera_centers
from mvtrack.models import load_model
from mvtrack.training import TrainConfig, Trainer

TINY = Path(__file__).resolve().parents[2] / "configs" / "camera_only_tiny.yaml"

CVD = ["cvd.epipolar={mode: module, blocks: [1], band: 1.5}", "cvd.pseudo_fraction=0.5"]


def _config(tmp_path, *overrides):
    return TrainConfig.from_yaml(TINY, [f"output_dir={tmp_path}", "log_every=2", "max_steps=4", "checkpoint_every=2",
                                        *CVD, *overrides])


def test_cvd_trains_the_cross_view_module_and_exports_it(tmp_path):
    trainer = Trainer(_config(tmp_path))
    assert trainer.unwrapped.cross_view is not None
    start = {k: v.clone() for k, v in trainer.unwrapped.cross_view.state_dict().items()}
    trainer.train()
    moved = trainer.unwrapped.cross_view.state_dict()
    assert (moved["1.out.weight"] - start["1.out.weight"]).abs().max() > 0  # the zero-initialised output learned
    model, _ = load_model(tmp_path / "final")
    assert dict(model.config.epipolar)["blocks"] == [1] and model.cross_view is not None


def test_pseudo_views_replace_a_share_of_the_samples(tmp_path):
    trainer = Trainer(_config(tmp_path, "cvd.pseudo_fraction=1.0"))
    clip = trainer.batches.get(0)
    mixed = trainer.pseudo_views(clip, torch.Generator().manual_seed(0))
    assert mixed.video.shape == clip.video.shape
    torch.testing.assert_close(mixed.video[:, 0], clip.video[:, 0])  # view 0 is the real source
    # every other view shares view 0's camera centre (a rotated, zoomed camera)
    torch.testing.assert_close(camera_centers(mixed.w2c[:, 1]), camera_centers(mixed.w2c[:, 0]), atol=1e-4, rtol=0)
    assert not torch.allclose(camera_centers(clip.w2c[:, 1]), camera_centers(clip.w2c[:, 0]), atol=1e-3)
    # and its mask is the exact homography band, not the full-attention fallback
    m = trainer.unwrapped.epipolar_mask(mixed.w2c, mixed.K, mixed.size, mixed.size, coincident="homography")
    assert m.density() < 0.75


def test_cvd_resume_is_exact(tmp_path, train_killed_at):
    full = Trainer(_config(tmp_path / "full"))
    full.train()
    train_killed_at(Trainer(_config(tmp_path / "split")), 3)
    resumed = Trainer(_config(tmp_path / "split"))
    assert resumed.start_step == 2
    resumed.train()
    a, b = full.unwrapped.state_dict(), resumed.unwrapped.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_bad_cvd_settings_are_named(tmp_path):
    with pytest.raises(ValueError, match="cvd.pseudo_fraction"):
        _config(tmp_path, "cvd.pseudo_fraction=1.5")
    with pytest.raises(ValueError, match="cvd.epipolar.mode"):  # refused with the config, before a model loads
        _config(tmp_path, "cvd.epipolar={mode: sparse}")


@pytest.mark.slow
def test_monocular_realestate10k_clips_train_cvd_on_pseudo_views_only(tmp_path):
    """RealEstate10K clips (CameraCtrl's layout, read by its reader: one view each) written to shards train CVD when
    every sample becomes homography pseudo-views (cvd.pseudo_fraction 1); with real pairs expected too (a fraction
    below 1), the run names the views it needs."""
    from mvtrack.data import RealEstate10K, write_re10k_layout, write_shards
    from mvtrack.scenes import SynthConfig, render_clips

    rendered = render_clips(SynthConfig(views=1, frames=5, height=24, width=40, num_tracks=4), [0, 1])
    clips = [{"name": f"clip{i:012d}", "frames": (rendered.video[i, 0].permute(0, 2, 3, 1) * 255).round().byte().numpy(),
              "w2c": rendered.w2c[i, 0].double(), "K": rendered.K[i, 0].double(), "caption": "a room"}
             for i in range(2)]
    write_re10k_layout(tmp_path / "re10k", clips)
    reader = RealEstate10K(tmp_path / "re10k", size=(16, 16), num_frames=2, stride=2, start="first", shuffle=False)
    write_shards([reader[i] for i in range(len(reader))], tmp_path / "shards", video_format="png")

    def config(out, fraction):
        return _config(out, f"data.source={tmp_path / 'shards'}", "data.views=2", "data.frames=2", "data.height=16",
                       "data.width=16", "max_steps=2", f"cvd.pseudo_fraction={fraction}")

    trainer = Trainer(config(tmp_path / "a", 1.0))
    assert trainer.batches.get(0).num_views == 1  # what the shards hold; pseudo-views make the second view
    metrics = trainer.train()
    assert metrics["step"] == 2 and math.isfinite(metrics["loss"]) and metrics["loss"] > 0
    with pytest.raises(ValueError, match=r"expected clips with >= 2 views.*got 1 views"):
        Trainer(config(tmp_path / "b", 0.5)).train()
