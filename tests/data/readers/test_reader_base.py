"""The reader base: frame sampling, partial decoding, and each rank reading its own share."""

import numpy as np
import pytest
import torch

from mvtrack.data import MultiViewClip, ReaderDataset
from mvtrack.data.readers import base
from mvtrack.data.readers.base import frame_indices, read_video_frames
from mvtrack.viz import read_video, write_mp4


class Numbers(ReaderDataset):
    """Item i is a 1x1 clip whose meta records the item and a draw from its generator."""

    def load(self, item, generator):
        draw = int(torch.randint(0, 1 << 30, (1,), generator=generator))
        return MultiViewClip(video=torch.zeros(1, 1, 3, 1, 1), w2c=torch.eye(4)[None, None], K=torch.eye(3)[None, None],
                             tracks=torch.zeros(1, 1, 0, 2), visible=torch.zeros(1, 1, 0, dtype=torch.bool),
                             meta={"item": item, "draw": draw})


def test_each_rank_reads_its_own_share_of_the_same_samples(monkeypatch):
    ds = Numbers(list(range(7)), seed=3)
    alone = {c.meta["item"]: c.meta["draw"] for c in ds}
    shares = []
    for rank in range(2):
        monkeypatch.setattr(base, "worker_split", lambda r=rank: (r, 2))
        shares.append({c.meta["item"]: c.meta["draw"] for c in ds})
    assert set(shares[0]).isdisjoint(shares[1]) and {**shares[0], **shares[1]} == alone
    assert abs(len(shares[0]) - len(shares[1])) <= 1
    ds.set_epoch(1)  # a new epoch: another order and other draws
    monkeypatch.setattr(base, "worker_split", lambda: (0, 1))
    assert {c.meta["item"]: c.meta["draw"] for c in ds} != alone


def test_frame_indices():
    g = torch.Generator().manual_seed(0)
    assert frame_indices(10, 4, 3, "first", g, "x") == [0, 3, 6, 9]
    assert frame_indices(10, 2, 1, 8, g, "x") == [8, 9]
    starts = {frame_indices(10, 3, 2, "random", g, "x")[0] for _ in range(50)}
    assert starts == set(range(6))
    with pytest.raises(ValueError, match="clip.mp4: has 10 frames, expected at least 13"):
        frame_indices(10, 5, 3, "first", g, "clip.mp4")
    with pytest.raises(ValueError, match="clip.mp4: start 8 with 3 frames at stride 1 needs 11 frames, has 10"):
        frame_indices(10, 3, 1, 8, g, "clip.mp4")


def test_partial_decoding_returns_the_frames_asked_for(tmp_path):
    frames = np.random.default_rng(0).integers(0, 255, (7, 16, 24, 3), dtype=np.uint8)
    write_mp4(tmp_path / "v.mp4", frames)
    full = read_video(tmp_path / "v.mp4")
    assert np.array_equal(read_video_frames(tmp_path / "v.mp4", [1, 4, 6]), full[[1, 4, 6]])
    with pytest.raises(ValueError, match="v.mp4: has 7 frames, expected at least 9"):
        read_video_frames(tmp_path / "v.mp4", [2, 8])
    with pytest.raises(FileNotFoundError, match="w.mp4: not found"):
        read_video_frames(tmp_path / "w.mp4", [0])
