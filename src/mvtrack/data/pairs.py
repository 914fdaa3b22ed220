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
    generator: torch.Generator | None = None,
) -> TrackPairs:
    """Draw ``num_pairs`` correspondences per clip.

    Kinds: ``temporal`` (same view, another frame), ``cross_view`` (another view, same frame) and
    ``cross_view_time`` (another view and another frame), drawn uniformly among ``kinds``.

    Args:
        tracks: (B, V, T, N, 2) pixels; visible: (B, V, T, N) bool.
        require_dst_visible: draw only destinations where the point is visible (e.g. for attention losses).
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
    device = tracks.device
    P = num_pairs
    kind_ids = torch.tensor([PAIR_KINDS.index(k) for k in kinds], device=device)
    kind = kind_ids[torch.randint(len(kinds), (B, P), generator=generator, device=device)]

    # 1. Sources: uniform over visible (view, frame, track) entries.
    vis_flat = visible.reshape(B, V * T * N).float()
    has_src = vis_flat.sum(-1) > 0
    weights = torch.where(has_src[:, None], vis_flat, torch.ones_like(vis_flat))
    src = torch.multinomial(weights, P, replacement=True, generator=generator)  # (B, P)
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
        allowed = allowed & dst_vis_all
    has_dst = allowed.flatten(2).any(-1)
    w = allowed.flatten(2).float()
    w = torch.where(has_dst[..., None], w, torch.ones_like(w))
    dst = torch.multinomial(w.reshape(B * P, V * T), 1, generator=generator).reshape(B, P)
    dst_view, dst_time = dst // T, dst % T

    valid = has_src[:, None] & has_dst
    zero = torch.zeros_like(track)
    pick = lambda x: torch.where(valid, x, zero)  # noqa: E731
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
