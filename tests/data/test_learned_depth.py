"""A monocular depth model from a local directory (tiny random Depth Anything, saved and reloaded), aligned to stereo."""

import pytest
import torch

from mvtrack.data.learned_depth import LearnedDepth, align_inverse_depth


@pytest.fixture
def depth_model_dir(tmp_path):
    """A Depth Anything V2 layout with tiny random weights: config.json, weights and preprocessor_config.json."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    torch.manual_seed(0)
    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=14, image_size=56, out_features=["stage1", "stage2", "stage3", "stage4"],
                            reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone.to_dict(), reassemble_hidden_size=32,
                                 neck_hidden_sizes=[8, 16, 16, 16], fusion_hidden_size=16, head_hidden_size=8,
                                 patch_size=14)
    DepthAnythingForDepthEstimation(config).save_pretrained(tmp_path / "depth")
    DPTImageProcessor(size={"height": 56, "width": 56}, keep_aspect_ratio=False, ensure_multiple_of=14,
                      do_pad=False).save_pretrained(tmp_path / "depth")
    return tmp_path / "depth"


def test_a_saved_depth_model_reloads_and_predicts_at_the_frames_size(depth_model_dir):
    model = LearnedDepth(depth_model_dir)
    frames = torch.rand(3, 3, 40, 48)
    out = model.predict(frames)
    assert out.shape == (3, 40, 48) and torch.isfinite(out).all()
    assert not torch.allclose(out[0], out[1])  # a function of the image, not a constant
    torch.testing.assert_close(model.predict(frames), out)  # deterministic (eval mode)


def test_missing_or_wrong_depth_model_directories_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--depth-model .*nowhere: expected a transformers"):
        LearnedDepth(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(ValueError, match="cannot be loaded as a depth-estimation model"):
        LearnedDepth(tmp_path / "bad")


def test_alignment_recovers_each_frames_scale_and_shift_from_the_stereo_pixels():
    g = torch.Generator().manual_seed(0)
    depth = 2 + 8 * torch.rand(2, 16, 16, generator=g)  # the truth, in the cameras' units
    relative = torch.stack([3.0 / depth[0] + 0.5, 0.7 / depth[1] - 0.01])  # each frame: its own scale and shift
    valid = torch.rand(2, 16, 16, generator=g) < 0.5
    noisy = torch.where(torch.rand(2, 16, 16, generator=g) < 0.1, depth * 3, depth)  # 10% wrong stereo pixels
    aligned = align_inverse_depth(relative, noisy, valid)
    torch.testing.assert_close(aligned, depth, rtol=1e-4, atol=1e-4)  # the trimmed fit ignores the outliers
    assert align_inverse_depth(relative, depth, torch.zeros_like(valid)) is None  # nothing to align to
