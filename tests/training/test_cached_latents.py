"""Cached latents and text (mvtrack encode): written once, read by training without a VAE or text-encoder pass, and
trained on exactly as the video they encode."""

from pathlib import Path

import pytest
import torch

from mvtrack.data import iter_shard, list_shards, write_shards
from mvtrack.data.latents import LatentClip
from mvtrack.models.pretrained import load_vae_codec
from mvtrack.models.text import load_text_encoder
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.training import TrainConfig, Trainer
from mvtrack.training.encode import DEFAULT_CAPTION, encode_shards

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"


@pytest.fixture
def video_shards(tmp_path):
    clips = render_clips(SynthConfig(views=2, frames=9, height=32, width=32, num_tracks=16), list(range(4))).unbatch()
    clips[1].meta["caption"] = "a red cube moves over a textured ground"
    write_shards(clips, tmp_path / "video", clips_per_shard=2, video_format="png")
    return tmp_path / "video", clips


def config(out, model, source, *overrides):
    return TrainConfig.from_yaml(TINY, [f"output_dir={out}", f"model={model}", f"data.source={source}", "data.frames=5",
                                        "data.height=32", "data.width=32", "max_steps=2", "checkpoint_every=2",
                                        "log_every=1", "text.max_length=8", *overrides])


def test_encode_writes_latents_and_text_once(tmp_path, wan21_root, video_shards):
    source, clips = video_shards
    stats = encode_shards(wan21_root, source, tmp_path / "latents", clips_per_shard=3, dtype="float32", max_length=8)
    assert (stats.clips, stats.shards, stats.text) == (4, 2, True)
    cached = [c for p in list_shards(tmp_path / "latents") for c in iter_shard(p)]
    assert all(isinstance(c, LatentClip) for c in cached) and len(cached) == 4
    codec = load_vae_codec(wan21_root)
    text = load_text_encoder(wan21_root, torch.float32, 8)
    stored = [c for p in list_shards(source) for c in iter_shard(p)]  # the video as the shards hold it (uint8)
    for clip, c in zip(stored, cached):
        torch.testing.assert_close(c.latents, codec.encode(clip.video[None])[0], atol=1e-5, rtol=1e-5)
        assert c.size == (32, 32) and torch.equal(c.w2c, clip.w2c) and torch.equal(c.tracks, clip.tracks)
    assert torch.equal(cached[1].text, text.token_embeds("a red cube moves over a textured ground"))
    assert torch.equal(cached[0].text, text.token_embeds(DEFAULT_CAPTION))
    assert torch.equal(cached[0].text_empty, text.token_embeds(""))
    # Wan's VAE is causal: the first latent frames of 9 frames are the latents of the first 5 alone
    torch.testing.assert_close(cached[0].latents[:, :2], codec.encode(stored[0].video[None, :, :5])[0],
                               atol=1e-5, rtol=1e-5)


def test_training_reads_cached_latents_as_it_encodes_video(tmp_path, wan21_root, video_shards, monkeypatch):
    """One micro-step on latent shards gives the loss of the same step on the video shards (same model, noise and
    captions), with neither the VAE nor UMT5 running; then the run trains and checkpoints."""
    source, _ = video_shards
    encode_shards(wan21_root, source, tmp_path / "latents", dtype="float32", max_length=8)
    from_video = Trainer(config(tmp_path / "a", wan21_root, source))
    from_cache = Trainer(config(tmp_path / "b", wan21_root, tmp_path / "latents"))
    assert from_cache.batches.latents and from_cache.cached_text and from_cache.text is None
    assert from_video.text is not None and not from_video.batches.latents
    monkeypatch.setattr(from_cache.codec, "encode", lambda video: pytest.fail("cached latents ran the VAE"))
    a, parts_a = from_video.micro_step(0, 0)
    b, parts_b = from_cache.micro_step(0, 0)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    from_cache.optimizer.zero_grad()
    metrics = from_cache.train()
    assert metrics["step"] == 2 and metrics["loss"] > 0


def test_cached_latents_refuse_what_they_cannot_train(tmp_path, wan21_root, video_shards):
    source, _ = video_shards
    encode_shards(wan21_root, source, tmp_path / "latents", max_length=8)  # float16
    with pytest.raises(ValueError, match="works in pixels"):
        Trainer(config(tmp_path / "a", "tiny", tmp_path / "latents", "data.frames=5"))
    with pytest.raises(ValueError, match="pseudo-views"):
        Trainer(config(tmp_path / "b", wan21_root, tmp_path / "latents", "cvd.pseudo_fraction=0.5"))
    with pytest.raises(ValueError, match="1 \\+ 4k video frames"):
        Trainer(config(tmp_path / "c", wan21_root, tmp_path / "latents", "data.frames=4")).batches.get(0)


def test_encode_command(tmp_path, wan_root, video_shards):
    """`mvtrack encode` writes latent shards; a root without a text encoder needs --no-text, said in one line."""
    from typer.testing import CliRunner

    from mvtrack.cli import app

    root, _ = wan_root
    source, _ = video_shards
    runner = CliRunner()
    args = ["encode", "--model", str(root), "--source", str(source), "--out", str(tmp_path / "latents")]
    failed = runner.invoke(app, args)
    assert failed.exit_code == 2 and "error: encode: model" in failed.output and "--no-text" in failed.output
    done = runner.invoke(app, [*args, "--no-text"])
    assert done.exit_code == 0, done.output
    cached = next(iter_shard(list_shards(tmp_path / "latents")[0]))
    assert isinstance(cached, LatentClip) and cached.text is None and cached.latents.dtype == torch.float16
