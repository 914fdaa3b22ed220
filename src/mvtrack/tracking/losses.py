"""Track-supervision losses: MVTrack4Gen's ``L_corr`` (attention cross-entropy) and ``L_track`` (tracking head),
and Track4Gen's refiner loss. Positions are in token-grid units (:class:`~mvtrack.tracking.tokens.TokenGrid`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .tokens import TokenGrid, frame_logits, sample_tokens, soft_argmax_uv


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(x.dtype)
    return (x * mask).sum() / mask.sum().clamp_min(1.0)


def corr_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the softmax over a frame's tokens against soft labels, averaged over ``mask``.

    Args:
        logits: (B, P, n); labels: (B, P, n) rows summing to 1 (:func:`soft_labels`); mask: (B, P) bool.
    """
    ce = -(labels * F.log_softmax(logits.float(), -1)).sum(-1)
    return _masked_mean(ce, mask)


def track_loss(estimates: list[torch.Tensor], visibility_logit: torch.Tensor, target_uv: torch.Tensor,
               target_visible: torch.Tensor, valid: torch.Tensor, gamma: float = 0.8):
    """(Huber on positions where the target is visible, weighted ``gamma^(iters - 1 - i)`` over refinement steps;
    BCE on visibility over every valid pair)."""
    n = len(estimates)
    vis_mask = valid & target_visible
    huber = sum(
        gamma ** (n - 1 - i)
        * _masked_mean(F.huber_loss(e.float(), target_uv.float(), reduction="none").sum(-1), vis_mask)
        for i, e in enumerate(estimates)
    )
    bce = _masked_mean(
        F.binary_cross_entropy_with_logits(visibility_logit.float(), target_visible.float(), reduction="none"), valid
    )
    return huber, bce


def refiner_loss(refined: torch.Tensor, grid: TokenGrid, src_frame: torch.Tensor, src_uv: torch.Tensor,
                 dst_frame: torch.Tensor, dst_uv: torch.Tensor, mask: torch.Tensor, radius: float = 2.0,
                 temperature: float = 0.1) -> torch.Tensor:
    """Track4Gen: the refined feature at the source point against the refined features of the target frame as a
    cosine cost volume; soft-argmax within ``radius`` tokens of its peak; Huber against the true position.

    Args:
        refined: (B * frames_total, D, h, w) refined per-frame features (the model's ``refined``).
        src_frame, dst_frame: (B, P) frame indices; src_uv, dst_uv: (B, P, 2) grid coordinates; mask: (B, P).
    """
    B = src_frame.shape[0]
    tokens = F.normalize(refined.float().flatten(2).transpose(1, 2).reshape(B, -1, refined.shape[1]), dim=-1)
    query = F.normalize(sample_tokens(tokens, grid, src_frame, src_uv), dim=-1)  # (B, P, D)
    cosine = frame_logits(query[:, :, None], tokens[:, :, None], grid, dst_frame) * refined.shape[1] ** 0.5
    uv = soft_argmax_uv(cosine, grid, radius=radius, temperature=temperature)
    return _masked_mean(F.huber_loss(uv, dst_uv.float(), reduction="none").sum(-1), mask)
