import io
import tarfile

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mvtrack.data import (ReadStats, ShardClips, ShardDataset, ShardError, collate, iter_shard, list_shards,
                          write_shards)


def _assert_same(a, b):
    torch.testing.assert_close(a.video, b.video, atol=0.5 / 255 + 1e-6, rtol=0)  # stored as uint8
    for name in ("w2c", "K", "tracks", "visible", "depth", "tracks3d", "queries", "track_instance"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert a.meta == b.meta


def test_round_trip_through_shards(tmp_path, small_clips):
    paths = write_shards(small_clips, tmp_path, clips_per_shard=2)
    assert [p.name for p in paths] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    assert not list(tmp_path.glob("*.tmp"))
    read = [c for p in list_shards(tmp_path) for c in iter_shard(p)]
    assert len(read) == 5
    for a, b in zip(small_clips, read):
        _assert_same(a, b)


def test_shards_hold_no_pickles_and_read_with_webdataset(tmp_path, small_clips):
    wds = pytest.importorskip("webdataset")
    write_shards(small_clips[:2], tmp_path, clips_per_shard=8)
    path = tmp_path / "shard-000000.tar"
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert all(n.endswith((".npy", ".json")) for n in names)
    samples = list(wds.WebDataset(str(path), shardshuffle=False).decode())
    assert len(samples) == 2
    np.testing.assert_array_equal(samples[1]["tracks.npy"], small_clips[1].tracks.numpy())
    assert samples[0]["video.npy"].dtype == np.uint8 and samples[0]["video.npy"].shape == (2, 4, 24, 32, 3)


def test_truncated_shard_keeps_complete_clips_and_warns(tmp_path, small_clips):
    write_shards(small_clips, tmp_path, clips_per_shard=5)
    path = tmp_path / "shard-000000.tar"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.55)])
    stats = ReadStats()
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        read = list(iter_shard(path, stats))
    assert 1 <= len(read) < 5 and stats.corrupt_shards == 1 and stats.clips == len(read)
    for a, b in zip(small_clips, read):
        _assert_same(a, b)


def test_corrupt_member_skips_only_its_sample(tmp_path, small_clips):
    write_shards(small_clips[:3], tmp_path, clips_per_shard=8)
    src = tmp_path / "shard-000000.tar"
    dst = tmp_path / "bad" / "shard-000000.tar"
    dst.parent.mkdir()
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin:
            payload = tin.extractfile(info).read()
            if info.name == "000000001.tracks.npy":
                payload = b"not a numpy file"
                info.size = len(payload)
            tout.addfile(info, io.BytesIO(payload))
    stats = ReadStats()
    with pytest.warns(UserWarning, match="sample 000000001: field tracks is not a valid .npy"):
        read = list(iter_shard(dst, stats))
    assert len(read) == 2 and stats.skipped_samples == 1
    _assert_same(read[1], small_clips[2])


def test_dataset_splits_shards_over_workers(tmp_path, small_clips):
    write_shards(small_clips, tmp_path, clips_per_shard=1)
    ds = ShardDataset(tmp_path, shuffle=True, seed=1)
    single = [c.meta["seed"] for c in ds]
    assert sorted(single) == sorted(c.meta["seed"] for c in small_clips)
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    seen = [m["seed"] for batch in loader for m in batch.meta]
    assert sorted(seen) == sorted(single)  # every clip once, across both workers


def test_shard_clips_read_any_clip_by_index(tmp_path, small_clips):
    """Random access from an index of the tar headers: clip i is the i-th sample of the sorted shards."""
    write_shards(small_clips, tmp_path, clips_per_shard=2, video_format="png")
    clips = ShardClips(tmp_path)
    assert len(clips) == 5 and clips.stats.shards == 3
    for i in (4, 0, 3):  # any order
        _assert_same(clips[i], small_clips[i])


def test_shard_clips_keep_the_complete_clips_of_a_truncated_shard(tmp_path, small_clips):
    write_shards(small_clips, tmp_path, clips_per_shard=5)
    path = tmp_path / "shard-000000.tar"
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.55)])
    with pytest.warns(UserWarning, match="truncated or corrupt"):
        clips = ShardClips(tmp_path)
    assert len(clips) == len(list(iter_shard(path))) >= 1 and clips.stats.corrupt_shards == 1
    for i in range(len(clips)):
        _assert_same(clips[i], small_clips[i])


def test_shard_clips_name_a_sample_that_does_not_decode(tmp_path, small_clips):
    write_shards(small_clips[:2], tmp_path, clips_per_shard=8)
    path = tmp_path / "shard-000000.tar"
    clips = ShardClips(tmp_path)
    suffix, offset, size = next(m for m in clips.samples[1].members if m[0] == "tracks.npy")
    data = bytearray(path.read_bytes())
    data[offset : offset + 6] = b"garbag"  # the .npy magic
    path.write_bytes(bytes(data))
    _assert_same(clips[0], small_clips[0])
    with pytest.raises(ShardError, match="sample 000000001: field tracks is not a valid .npy"):
        clips[1]


def test_list_shards_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no .tar files"):
        list_shards(tmp_path)
    with pytest.raises(FileNotFoundError, match="neither a directory"):
        list_shards(tmp_path / "missing")
