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


def corr_loss_per_head(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor,
                       heads: list[int] | None = None) -> torch.Tensor:
    """``L_corr`` head by head: the cross-entropy of each head's own softmax over the frame's tokens, averaged over
    ``heads`` (default: all) and over ``mask``. Unlike :func:`corr_loss` on head-averaged logits, one head that
    attends to the true point cannot satisfy it for the others.

    Args:
        logits: (B, P, heads, n) (:func:`~mvtrack.tracking.tokens.frame_logits_per_head`); labels: (B, P, n) rows
            summing to 1; mask: (B, P) bool; heads: indices of the supervised heads.
    """
    if logits.dim() != 4 or logits.shape[:2] != labels.shape[:2] or logits.shape[-1] != labels.shape[-1]:
        raise ValueError(f"logits: expected (B, P, heads, n) matching labels {tuple(labels.shape)}, got "
                         f"{tuple(logits.shape)}")
    if heads is not None:
        if not heads or not all(0 <= h < logits.shape[2] for h in heads):
            raise ValueError(f"heads: expected indices in [0, {logits.shape[2]}), got {heads}")
        logits = logits[:, :, list(heads)]
    ce = -(labels[:, :, None] * F.log_softmax(logits.float(), -1)).sum(-1)  # (B, P, heads)
    return _masked_mean(ce.mean(-1), mask)


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
                 temperature: float = 0.1, softargmax: str = "softmax") -> torch.Tensor:
    """Track4Gen: the refined feature at the source point against the refined features of the target frame as a
    cosine cost volume (the paper's Eq. 2); soft-argmax within ``radius`` tokens of its peak; Huber against the
    true position (Eq. 4, averaged over the visible pairs).

    Args:
        refined: (B * frames_total, D, h, w) refined per-frame features (the model's ``refined``).
        src_frame, dst_frame: (B, P) frame indices; src_uv, dst_uv: (B, P, 2) grid coordinates; mask: (B, P).
        softargmax: ``softmax`` (of the cosines / ``temperature``) or ``eq3`` (the paper's Eq. 3: the cosines
            themselves, normalised; ``temperature`` unused); see :func:`~mvtrack.tracking.tokens.soft_argmax_uv`.
    """
    B = src_frame.shape[0]
    tokens = F.normalize(refined.float().flatten(2).transpose(1, 2).reshape(B, -1, refined.shape[1]), dim=-1)
    query = F.normalize(sample_tokens(tokens, grid, src_frame, src_uv), dim=-1)  # (B, P, D)
    cosine = frame_logits(query[:, :, None], tokens[:, :, None], grid, dst_frame) * refined.shape[1] ** 0.5
    uv = soft_argmax_uv(cosine, grid, radius=radius, temperature=temperature, mode=softargmax)
    return _masked_mean(F.huber_loss(uv, dst_uv.float(), reduction="none").sum(-1), mask)
