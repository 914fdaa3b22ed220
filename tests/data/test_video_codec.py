"""Encoded video in shards: round trips, old shards, sizes, and damaged members."""

import io
import json
import tarfile

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mvtrack.data import (ReadStats, ShardDataset, ShardError, decode_clip, encode_clip, iter_shard, list_shards,
                          write_shards)
from mvtrack.data.video_codec import VideoCodecError, decode_video, encode_video

LOSSLESS = ("w2c", "K", "tracks", "visible", "depth", "tracks3d", "queries", "track_instance")
# Stated tolerance of the lossy formats at their default quality, per clip, on the engine's tiny 24x32 test clips
# (measured per clip: mean 1.5-3.0/255, 99th percentile 8.6-13/255 for mp4; 1.7-3.0 and 10-11 for jpg). Larger
# frames compress better: 128x128 engine clips gave a mean of 1.4/255 as mp4.
MEAN_TOL, P99_TOL = 4.0 / 255, 16.0 / 255


def _video_error(a, b):
    err = (a.video - b.video).abs().flatten()
    return err.mean().item(), err.quantile(0.99).item()


@pytest.mark.parametrize("video_format", ["mp4", "jpg", "png"])
def test_encoded_round_trip_keeps_fields_exact_and_frames_within_tolerance(tmp_path, small_clips, video_format):
    write_shards(small_clips, tmp_path, clips_per_shard=2, video_format=video_format)
    with tarfile.open(tmp_path / "shard-000000.tar") as tar:
        names = tar.getnames()
    last = "000000000.video.1." + ("mp4" if video_format == "mp4" else f"3.{video_format}")
    assert "000000000.video.npy" not in names and last in names
    read = [c for p in list_shards(tmp_path) for c in iter_shard(p)]
    assert len(read) == len(small_clips)
    for a, b in zip(small_clips, read):
        for name in LOSSLESS:
            assert torch.equal(getattr(a, name), getattr(b, name)), name
        assert a.meta == b.meta and b.video.shape == a.video.shape
        mean, p99 = _video_error(a, b)
        if video_format == "png":  # lossless: equal to the uint8 rounding of the clip
            torch.testing.assert_close(b.video, a.video, atol=0.5 / 255 + 1e-6, rtol=0)
        else:
            assert mean <= MEAN_TOL and p99 <= P99_TOL, (mean * 255, p99 * 255)


def test_old_and_encoded_shards_read_together(tmp_path, small_clips):
    write_shards(small_clips[:2], tmp_path / "old", clips_per_shard=1)  # the format of older shards
    write_shards(small_clips[2:4], tmp_path / "new", clips_per_shard=1, video_format="mp4")
    ds = ShardDataset([tmp_path / "old", tmp_path / "new"], shuffle=False)
    seeds = [c.meta["seed"] for c in ds]
    assert seeds == [c.meta["seed"] for c in small_clips[:4]]
    assert ds.stats.skipped_samples == 0


def test_mp4_is_much_smaller_and_repeatable():
    # smooth frames with a moving edge, 2 views x 8 frames x 64 x 96: closer to video than noise
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 96), indexing="ij")
    base = torch.stack([x, y, 0.5 * (x + y)])  # (3, H, W)
    video = torch.stack([torch.stack([(base + 0.3 * (x > (t + v) / 10)).clamp(0, 1) for t in range(8)])
                         for v in range(2)])  # (2, 8, 3, 64, 96)
    frames = (video.permute(0, 1, 3, 4, 2) * 255).round().to(torch.uint8).numpy()
    raw = frames.nbytes
    a, b = encode_video(frames, "mp4"), encode_video(frames, "mp4")
    assert a == b  # the same frames give the same bytes (constant QP, one thread)
    assert sum(map(len, a.values())) < raw / 20
    back = decode_video(a, "mp4", frames.shape[:4])
    assert np.abs(back.astype(int) - frames).mean() < 2 and back.shape == frames.shape


def test_odd_sizes_survive_mp4():
    frames = np.random.default_rng(0).integers(0, 255, (1, 3, 7, 9, 3), dtype=np.uint8)
    back = decode_video(encode_video(frames, "mp4", quality=0), "mp4", (1, 3, 7, 9))
    assert back.shape == (1, 3, 7, 9, 3) and np.abs(back.astype(int) - frames).max() <= 2  # QP 0 ~ lossless


@pytest.fixture(scope="module")
def mp4_sample():
    from mvtrack.scenes import SynthConfig, clip_seed, render_clips

    clip = render_clips(SynthConfig(views=2, frames=3, height=16, width=16, num_tracks=4), [clip_seed(1, 0)])
    return encode_clip(clip.unbatch()[0], video_format="mp4")


def test_damaged_encoded_members_name_the_member(mp4_sample, small_clips):
    missing = {k: v for k, v in mp4_sample.items() if k != "video.1.mp4"}
    with pytest.raises(ShardError, match="video.1.mp4 of the mp4 video is missing"):
        decode_clip(missing, where="s")
    with pytest.raises(ShardError, match="s: video.0.mp4: not a decodable MP4"):
        decode_clip({**mp4_sample, "video.0.mp4": mp4_sample["video.0.mp4"][:200]}, where="s")
    info = json.loads(mp4_sample["json"])
    for shape, message in (([2, 3, 16, 18], "stream is 16x16, expected 16x18"), ([2, 2, 16, 16], "more than the 2"),
                           ([2, 4, 16, 16], "holds 3 frames, expected 4"), ([2, 3, 1 << 20, 1 << 20], "GiB limit")):
        bad = json.dumps({**info, "video": {**info["video"], "shape": shape}}).encode()
        with pytest.raises(ShardError, match=message):
            decode_clip({**mp4_sample, "json": bad}, where="s")
    other = encode_clip(small_clips[0], video_format="png")  # a 24x32 image where 16x16 is declared
    with pytest.raises(VideoCodecError, match="image is 24x32, expected 16x16"):
        decode_video({f"video.{v}.{t}.png": other["video.0.0.png"] for v in range(2) for t in range(3)}, "png",
                     (2, 3, 16, 16))
    bad = json.dumps({**info, "video": {**info["video"], "format": "gif"}}).encode()
    with pytest.raises(ShardError, match="format in"):
        decode_clip({**mp4_sample, "json": bad})


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["video.0.mp4", "video.1.mp4"]), pos=st.integers(0, 3000),
       junk=st.binary(min_size=1, max_size=16), cut=st.booleans())
def test_damaged_mp4_raises_only_shard_errors(mp4_sample, field, pos, junk, cut):
    data = mp4_sample[field]
    pos = min(pos, len(data))
    mutated = data[:pos] if cut else data[:pos] + junk + data[pos + len(junk):]
    try:
        clip = decode_clip({**mp4_sample, field: mutated})
    except ShardError:
        return
    assert clip.video.shape == (2, 3, 3, 16, 16)


@pytest.mark.parametrize("cut", [0.3, 0.55])
def test_truncated_encoded_shard_keeps_complete_clips(tmp_path, small_clips, cut):
    write_shards(small_clips, tmp_path, clips_per_shard=5, video_format="jpg")
    path = tmp_path / "shard-000000.tar"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])  # 0.55 cuts at a member boundary, which tarfile reads as an end
    stats = ReadStats()
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        read = list(iter_shard(path, stats))
    assert 1 <= len(read) < 5 and stats.corrupt_shards == 1 and stats.clips == len(read)


def test_encoded_shards_read_with_webdataset(tmp_path, small_clips):
    wds = pytest.importorskip("webdataset")
    write_shards(small_clips[:2], tmp_path, clips_per_shard=8, video_format="mp4")
    samples = list(wds.WebDataset(str(tmp_path / "shard-000000.tar"), shardshuffle=False))
    assert len(samples) == 2 and {"video.0.mp4", "video.1.mp4", "tracks.npy", "json"} <= set(samples[0])
    np.testing.assert_array_equal(np.load(io.BytesIO(samples[1]["tracks.npy"])), small_clips[1].tracks.numpy())


def test_bad_options_are_one_line_errors(tmp_path, small_clips):
    with pytest.raises(ValueError, match="video_format: expected one of"):
        write_shards(small_clips[:1], tmp_path, video_format="avi")
    with pytest.raises(ValueError, match=r"quality: expected an integer in \[0, 51\] for mp4, got 80"):
        write_shards(small_clips[:1], tmp_path, video_format="mp4", quality=80)
