"""Sampling of track correspondences (source point -> the same physical point elsewhere) for supervision."""

from __future__ import annotations

from dataclasses import dataclass

import torch

PAIR_KINDS = ("temporal", "cross_view", "cross_view_time")


@dataclass
class TrackPairs:
    """P correspondences per clip, all shaped (B, P) or (B, P, 2).

    The source is a visible point (src_view, src_time, src_xy) of track ``track``; the destination is the
    same track at (dst_view, dst_time, dst_xy) with its visibility. ``kind`` indexes PAIR_KINDS;
    ``valid`` is False where no source or destination could be drawn (then the other fields are 0).
    """

    track: torch.Tensor
    src_view: torch.Tensor
    src_time: torch.Tensor
    src_xy: torch.Tensor
    dst_view: torch.Tensor
    dst_time: torch.Tensor
    dst_xy: torch.Tensor
    dst_visible: torch.Tensor
    kind: torch.Tensor
    valid: torch.Tensor


def sample_pairs(
    tracks: torch.Tensor,
    visible: torch.Tensor,
    num_pairs: int,
    kinds: tuple[str, ...] = PAIR_KINDS,
    require_dst_visible: bool = False,
    occluded_share: float = 0.0,
    generator: torch.Generator | None = None,
) -> TrackPairs:
    """Draw ``num_pairs`` correspondences per clip.

    Kinds: ``temporal`` (same view, another frame), ``cross_view`` (another view, same frame) and
    ``cross_view_time`` (another view and another frame), drawn uniformly among ``kinds``.

    By default the source is uniform over visible points and the destination uniform over the cells of the pair's
    kind, occluded or not (about 15% occluded on the synthetic training clips). Losses that need to see the point
    at the destination (``L_corr``, the refiner, the head's Huber) mask those out, so they are wasted there; with
    ``require_dst_visible`` none is: the source is drawn among the visible points that are also visible in some
    cell of the pair's kind, and the destination among those cells, so every pair is valid unless the clip holds
    no such point at all. A visibility classifier (the tracking head's BCE) still needs occluded destinations:
    ``occluded_share`` of the pairs (rounded, the first ones) are drawn the same way with an occluded destination
    (a visible one where the clip has no occluded destination of that kind). ``TrackSupervision`` asks for
    visible destinations, with 1/8 occluded when the head is trained: L_corr keeps 7/8 of the pairs (more than
    the ~85% it kept before) and the BCE a fixed share of negatives whatever the scene's occlusion rate.

    Args:
        tracks: (B, V, T, N, 2) pixels; visible: (B, V, T, N) bool.
        require_dst_visible: draw only visible destinations (but for ``occluded_share``), from sources that have one.
        occluded_share: in [0, 1], with ``require_dst_visible``: the share of pairs drawn with occluded destinations.
        generator: on the tensors' device.

    Returns:
        TrackPairs of shape (B, P).
    """
    if tracks.dim() != 5 or tracks.shape[-1] != 2:
        raise ValueError(f"tracks: expected (B, V, T, N, 2), got {tuple(tracks.shape)}")
    if visible.shape != tracks.shape[:-1]:
        raise ValueError(f"visible: expected {tuple(tracks.shape[:-1])}, got {tuple(visible.shape)}")
    unknown = set(kinds) - set(PAIR_KINDS)
    if unknown or not kinds:
        raise ValueError(f"kinds: expected a non-empty subset of {PAIR_KINDS}, got {kinds}")
    B, V, T, N, _ = tracks.shape
    if V < 2 and any(k != "temporal" for k in kinds):
        raise ValueError(f"kinds {kinds}: cross-view pairs need at least 2 views, got {V}")
    if T < 2 and any(k != "cross_view" for k in kinds):
        raise ValueError(f"kinds {kinds}: pairs across time need at least 2 frames, got {T}")
    if not 0.0 <= occluded_share <= 1.0:
        raise ValueError(f"occluded_share: expected a share in [0, 1], got {occluded_share}")
    if occluded_share > 0 and not require_dst_visible:
        raise ValueError("occluded_share: applies with require_dst_visible (otherwise occlusion is drawn as it comes)")
    device = tracks.device
    P = num_pairs
    kind_ids = torch.tensor([PAIR_KINDS.index(k) for k in kinds], device=device)
    kind = kind_ids[torch.randint(len(kinds), (B, P), generator=generator, device=device)]

    # 1. Sources: uniform over visible (view, frame, track) entries; with require_dst_visible, over those that have
    # a destination of the pair's kind in the state the pair wants (want_visible; occluded for the first pairs).
    if not require_dst_visible:
        vis_flat = visible.reshape(B, V * T * N).float()
        has_src = (vis_flat.sum(-1) > 0)[:, None].expand(B, P)
        weights = torch.where(has_src[:, :1], vis_flat, torch.ones_like(vis_flat))
        src = torch.multinomial(weights, P, replacement=True, generator=generator)  # (B, P)
    else:
        counts = torch.stack([_cells_per_kind(~visible), _cells_per_kind(visible)], 1)  # (B, 2, 3, V, T, N)
        usable = (visible[:, None, None] & (counts > 0)).reshape(B, 6, V * T * N)  # rows: (occluded|visible, kind)
        has_row = usable.any(-1)  # (B, 6)
        want_visible = (torch.arange(P, device=device) >= round(occluded_share * P)).expand(B, P)
        has_occluded = torch.gather(has_row, 1, kind)  # (B, P): the clip has an occluded destination of that kind
        row = torch.where(want_visible | ~has_occluded, 3 + kind, kind)  # (B, P)
        weights = torch.where(has_row[..., None], usable.float(), torch.ones_like(usable, dtype=torch.float))
        drawn = torch.multinomial(weights.reshape(B * 6, -1), P, replacement=True, generator=generator)
        src = torch.gather(drawn.reshape(B, 6, P), 1, row[:, None]).squeeze(1)  # (B, P)
        has_src = torch.gather(has_row, 1, row)
    src_vt, track = src // N, src % N
    src_view, src_time = src_vt // T, src_vt % T

    # 2. Destinations: uniform over the (view, frame) cells that the pair's kind allows.
    v_grid = torch.arange(V, device=device)[:, None].expand(V, T)
    t_grid = torch.arange(T, device=device)[None, :].expand(V, T)
    same_v = v_grid == src_view[..., None, None]  # (B, P, V, T)
    same_t = t_grid == src_time[..., None, None]
    allowed = torch.where((kind == 0)[..., None, None], same_v & ~same_t,
                          torch.where((kind == 1)[..., None, None], ~same_v & same_t, ~same_v & ~same_t))
    barange = torch.arange(B, device=device)[:, None]
    dst_vis_all = visible[barange, :, :, track]  # (B, P, V, T)
    if require_dst_visible:
        allowed = allowed & (dst_vis_all == (row >= 3)[..., None, None])
    has_dst = allowed.flatten(2).any(-1)
    w = allowed.flatten(2).float()
    w = torch.where(has_dst[..., None], w, torch.ones_like(w))
    dst = torch.multinomial(w.reshape(B * P, V * T), 1, generator=generator).reshape(B, P)
    dst_view, dst_time = dst // T, dst % T

    valid = has_src & has_dst
    zero = torch.zeros_like(track)
    pick = lambda x: torch.where(valid, x, zero)
    src_view, src_time, dst_view, dst_time, track = map(pick, (src_view, src_time, dst_view, dst_time, track))
    return TrackPairs(
        track=track,
        src_view=src_view,
        src_time=src_time,
        src_xy=tracks[barange, src_view, src_time, track],
        dst_view=dst_view,
        dst_time=dst_time,
        dst_xy=tracks[barange, dst_view, dst_time, track],
        dst_visible=visible[barange, dst_view, dst_time, track] & valid,
        kind=kind,
        valid=valid,
    )


def _cells_per_kind(mask: torch.Tensor) -> torch.Tensor:
    """For every (view, frame, track) cell, how many cells of the same track where ``mask`` holds each pair kind
    reaches: (B, V, T, N) bool -> (B, 3, V, T, N) counts in PAIR_KINDS order."""
    m = mask.long()
    per_view = m.sum(2, keepdim=True)  # (B, V, 1, N): same view, any frame
    per_time = m.sum(1, keepdim=True)  # (B, 1, T, N): same frame, any view
    total = m.sum((1, 2), keepdim=True)  # (B, 1, 1, N)
    return torch.stack([(per_view - m).expand_as(m), (per_time - m).expand_as(m),
                        total - per_view - per_time + m], 1)
