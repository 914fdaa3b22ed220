import pytest
import torch

from mvtrack.data import PAIR_KINDS, collate, sample_pairs


def test_pairs_follow_their_kind_and_the_tracks(small_clips):
    batch = collate(small_clips[:3])
    g = torch.Generator().manual_seed(0)
    pairs = sample_pairs(batch.tracks, batch.visible, 500, generator=g)
    assert pairs.valid.all()
    b = torch.arange(3)[:, None]
    assert batch.visible[b, pairs.src_view, pairs.src_time, pairs.track].all()  # sources are visible
    torch.testing.assert_close(pairs.src_xy, batch.tracks[b, pairs.src_view, pairs.src_time, pairs.track])
    torch.testing.assert_close(pairs.dst_xy, batch.tracks[b, pairs.dst_view, pairs.dst_time, pairs.track])
    assert torch.equal(pairs.dst_visible, batch.visible[b, pairs.dst_view, pairs.dst_time, pairs.track])
    same_v, same_t = pairs.src_view == pairs.dst_view, pairs.src_time == pairs.dst_time
    kind = pairs.kind
    assert (same_v & ~same_t)[kind == 0].all()
    assert (~same_v & same_t)[kind == 1].all()
    assert (~same_v & ~same_t)[kind == 2].all()
    assert set(kind.unique().tolist()) == {0, 1, 2}
    assert not pairs.dst_visible.all()  # occluded destinations are drawn too, with their flag


def test_require_visible_destinations(small_clips):
    batch = collate(small_clips[:2])
    pairs = sample_pairs(batch.tracks, batch.visible, 200, kinds=("cross_view",), require_dst_visible=True,
                         generator=torch.Generator().manual_seed(1))
    assert pairs.dst_visible[pairs.valid].all() and pairs.valid.float().mean() > 0.5
    assert (pairs.kind == PAIR_KINDS.index("cross_view")).all()


def test_pairs_are_reproducible(small_clips):
    batch = collate(small_clips[:2])
    a = sample_pairs(batch.tracks, batch.visible, 50, generator=torch.Generator().manual_seed(5))
    b = sample_pairs(batch.tracks, batch.visible, 50, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a.track, b.track) and torch.equal(a.dst_time, b.dst_time)


def test_pair_errors(small_clips):
    batch = collate(small_clips[:1])
    with pytest.raises(ValueError, match="at least 2 views"):
        sample_pairs(batch.tracks[:, :1], batch.visible[:, :1], 4)
    with pytest.raises(ValueError, match="kinds"):
        sample_pairs(batch.tracks, batch.visible, 4, kinds=("diagonal",))
    with pytest.raises(ValueError, match="visible: expected"):
        sample_pairs(batch.tracks, batch.visible[..., :3], 4)
    empty = sample_pairs(batch.tracks, torch.zeros_like(batch.visible), 4)
    assert not empty.valid.any()


@pytest.mark.parametrize("kind", PAIR_KINDS)
def test_required_visible_destinations_waste_no_pair(small_clips, kind):
    """Sources are drawn among points that have a visible destination of the pair's kind, so no pair comes back
    invalid (drawing the destination after the source left ~20% of cross-view pairs without one)."""
    batch = collate(small_clips)
    b = torch.arange(len(small_clips))[:, None]
    pairs = sample_pairs(batch.tracks, batch.visible, 300, kinds=(kind,), require_dst_visible=True,
                         generator=torch.Generator().manual_seed(2))
    assert pairs.valid.all() and pairs.dst_visible.all()
    assert batch.visible[b, pairs.src_view, pairs.src_time, pairs.track].all()
    torch.testing.assert_close(pairs.dst_xy, batch.tracks[b, pairs.dst_view, pairs.dst_time, pairs.track])
    same_v, same_t = pairs.src_view == pairs.dst_view, pairs.src_time == pairs.dst_time
    assert {"temporal": same_v & ~same_t, "cross_view": ~same_v & same_t, "cross_view_time": ~same_v & ~same_t}[kind].all()
    natural = sample_pairs(batch.tracks, batch.visible, 300, kinds=(kind,), generator=torch.Generator().manual_seed(2))
    assert not natural.dst_visible.all()  # the wasted samples this avoids


def test_occluded_share_feeds_a_visibility_classifier(small_clips):
    batch = collate(small_clips)
    b = torch.arange(len(small_clips))[:, None]
    pairs = sample_pairs(batch.tracks, batch.visible, 64, require_dst_visible=True, occluded_share=0.25,
                         generator=torch.Generator().manual_seed(3))
    assert pairs.valid.all()
    assert torch.equal(pairs.dst_visible, batch.visible[b, pairs.dst_view, pairs.dst_time, pairs.track])
    assert (~pairs.dst_visible).sum(1).tolist() == [16] * len(small_clips)  # exactly the share, in every clip
    assert set(pairs.kind[~pairs.dst_visible].tolist()) == {0, 1, 2}  # negatives of every kind
    # a clip where nothing is ever occluded: those pairs fall back to visible destinations rather than being lost
    everywhere = sample_pairs(batch.tracks, torch.ones_like(batch.visible), 64, require_dst_visible=True,
                              occluded_share=0.25, generator=torch.Generator().manual_seed(3))
    assert everywhere.valid.all() and everywhere.dst_visible.all()
    with pytest.raises(ValueError, match="occluded_share: expected a share"):
        sample_pairs(batch.tracks, batch.visible, 4, require_dst_visible=True, occluded_share=1.5)
    with pytest.raises(ValueError, match="applies with require_dst_visible"):
        sample_pairs(batch.tracks, batch.visible, 4, occluded_share=0.25)
