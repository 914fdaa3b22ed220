import pytest
import torch

from mvtrack.data import MultiViewClip, collate


def test_collate_and_unbatch_round_trip(small_clips):
    batch = collate(small_clips[:3])
    assert batch.batched and batch.video.shape[:3] == (3, 2, 4) and len(batch.meta) == 3
    for a, b in zip(small_clips[:3], batch.unbatch()):
        for name, value in a.tensors().items():
            assert torch.equal(value, getattr(b, name))
        assert a.meta == b.meta


def test_validation_names_the_field(small_clips):
    c = small_clips[0]
    with pytest.raises(ValueError, match=r"MultiViewClip.tracks: expected \(V, T, N, 2\) with T = 4"):
        MultiViewClip(video=c.video, w2c=c.w2c, K=c.K, tracks=c.tracks[:, :3], visible=c.visible)
    with pytest.raises(ValueError, match="MultiViewClip.visible: expected a bool"):
        MultiViewClip(video=c.video, w2c=c.w2c, K=c.K, tracks=c.tracks, visible=c.visible.float())
    bad = c.w2c.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="MultiViewClip.w2c: contains NaN"):
        MultiViewClip(video=c.video, w2c=bad, K=c.K, tracks=c.tracks, visible=c.visible)
    with pytest.raises(ValueError, match="MultiViewClip.video"):
        MultiViewClip(video=c.video[0], w2c=c.w2c, K=c.K, tracks=c.tracks, visible=c.visible)


def test_collate_rejects_mixed_shapes(small_clips):
    c = small_clips[0]
    other = MultiViewClip(video=c.video[:, :, :, :8], w2c=c.w2c, K=c.K, tracks=c.tracks, visible=c.visible)
    with pytest.raises(ValueError, match="field video has different shapes"):
        collate([c, other])
