"""The trainer's shard batches: a shuffled order per pass, each rank reading only its own clips, DataLoader workers
that change nothing but speed, corrupt clips replaced, and resumes that refuse a changed order."""

import json

import pytest
import torch

from mvtrack.data import ShardClips, write_shards
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.training import TrainConfig
from mvtrack.training.checkpoint import check_resume
from mvtrack.training.data import TrainBatches


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_data")
    clips = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), list(range(8))).unbatch()
    write_shards(clips, root / "shards", clips_per_shard=3, video_format="png")
    return root / "shards", [c.meta["seed"] for c in clips]


def data_config(source, **kw):
    return TrainConfig(data={"source": str(source), "views": 2, "frames": 2, "height": 16, "width": 16,
                             "workers": 0, **kw}).data


def seeds(batch):
    return [m["seed"] for m in batch.meta]


def test_each_pass_is_a_new_permutation_split_over_ranks(shards):
    source, all_seeds = shards
    data = data_config(source, seed=3)
    ranks = [TrainBatches(data, batch_size=2, grad_accum=1, rank=r, world=2) for r in range(2)]
    passes = []
    for first in (0, 2):  # 8 clips = 2 steps x 2 ranks x batch 2 per pass
        passes.append([s for step in (first, first + 1) for b in ranks for s in seeds(b.get(step))])
    assert sorted(passes[0]) == sorted(passes[1]) == sorted(all_seeds)  # every clip once per pass
    assert passes[0] != all_seeds and passes[0] != passes[1]  # shuffled, and anew each pass
    again = TrainBatches(data, batch_size=2, grad_accum=1, rank=1, world=2)
    assert seeds(again.get(3)) == seeds(ranks[1].get(3))  # a pure function of (seed, step, rank)
    other = TrainBatches(data_config(source, seed=4), batch_size=2, grad_accum=1, rank=1, world=2)
    assert [seeds(other.get(s)) for s in range(4)] != [seeds(ranks[1].get(s)) for s in range(4)]


def test_a_rank_reads_only_its_own_clips(shards, monkeypatch):
    source, _ = shards
    read = []
    original = ShardClips.read
    monkeypatch.setattr(ShardClips, "read", lambda self, i: read.append(i) or original(self, i))
    batches = TrainBatches(data_config(source), batch_size=2, grad_accum=2, rank=1, world=2)
    read.clear()  # the first clip was read to learn what the shards hold
    expected = []
    for step in range(2):
        for micro in range(2):
            expected += batches.shard_indices(step, micro)
            batches.get(step, micro)
    assert read == expected and len(read) == 8  # this rank's half of 16 positions (two passes), nothing else


def test_workers_change_nothing_but_speed_also_when_resumed(shards):
    source, _ = shards
    reference = TrainBatches(data_config(source), batch_size=2, grad_accum=2, rank=0, world=1)
    workers = TrainBatches(data_config(source, workers=2), batch_size=2, grad_accum=2, rank=0, world=1)
    order = [(0, 0), (0, 1), (1, 0), (1, 1), (5, 0), (5, 1), (6, 0)]  # a resume at step 5 restarts the loader
    for step, micro in order:
        a, b = reference.get(step, micro), workers.get(step, micro)
        assert seeds(a) == seeds(b)
        assert torch.equal(a.video, b.video) and torch.equal(a.w2c, b.w2c) and torch.equal(a.tracks, b.tracks)
    workers.close()


def test_a_clip_that_does_not_decode_is_replaced_by_the_next(shards, tmp_path):
    source, _ = shards
    clips = ShardClips(source)
    bad = tmp_path / "shards"
    bad.mkdir()
    for path in clips.shards:
        (bad / path.name).write_bytes(path.read_bytes())
    ref = clips.samples[4]
    suffix, offset, _ = next(m for m in ref.members if m[0] == "w2c.npy")
    path = bad / clips.shards[ref.shard].name
    data = bytearray(path.read_bytes())
    data[offset : offset + 6] = b"garbag"
    path.write_bytes(bytes(data))
    batches = TrainBatches(data_config(bad, shuffle=False), batch_size=2, grad_accum=1)
    with pytest.warns(UserWarning, match="skipping corrupt sample.*w2c"):
        batch = batches.get(2)  # positions 4 and 5: clip 4 does not decode, clip 5 stands in
    assert seeds(batch) == [clips[5].meta["seed"]] * 2 and batches.stats.skipped_samples == 1


def test_a_run_from_before_shuffle_resumes_only_unshuffled(tmp_path):
    config = TrainConfig(data={"source": "shards"}).to_dict()
    old = json.loads(json.dumps(config))
    del old["data"]["shuffle"], old["data"]["workers"]  # as a run written before these options holds it
    (tmp_path / "trainer.json").write_text(json.dumps({"config": old}))
    with pytest.raises(ValueError, match=r"data.shuffle \(False -> True\)"):
        check_resume(tmp_path, config)
    config["data"]["shuffle"] = False
    assert check_resume(tmp_path, config) == {}  # workers: a new key whose value changes no batch
