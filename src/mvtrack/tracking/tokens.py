"""Where pixels of a multi-view clip sit among the backbone's tokens, and attention logits of sampled queries
against one frame's keys (never a full attention map).

Token order is the backbone's: views follow one another along the frame axis, then rows, then columns
(``(v f h w)``). Token (i, j) of a frame covers pixels [j*pw, (j+1)*pw) x [i*ph, (i+1)*ph), so its centre is pixel
``(j*pw + (pw-1)/2, i*ph + (ph-1)/2)``; grid coordinates ``uv`` put token centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class TokenGrid:
    views: int
    frames: int
    h: int  # token rows per frame
    w: int  # token columns per frame
    ph: int  # patch height in pixels (of the model's input: pixels, or latent cells)
    pw: int

    @property
    def per_frame(self) -> int:
        return self.h * self.w

    @classmethod
    def of(cls, model, views: int, frames: int, height: int, width: int) -> TokenGrid:
        """The grid of ``model`` (a MultiViewTransformer in pixel space) on V x F frames of height x width pixels."""
        _, ph, pw = model.patch_size
        return cls(views, frames, height // ph, width // pw, ph, pw)

    def to_grid(self, xy: torch.Tensor) -> torch.Tensor:
        """Pixels (..., 2) -> token-grid coordinates (..., 2)."""
        scale = xy.new_tensor([self.pw, self.ph])
        return (xy + 0.5) / scale - 0.5

    def to_pixels(self, uv: torch.Tensor) -> torch.Tensor:
        scale = uv.new_tensor([self.pw, self.ph])
        return (uv + 0.5) * scale - 0.5

    def frame_index(self, view: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        return view * self.frames + time


def _bilinear(uv: torch.Tensor, h: int, w: int):
    """Corner flat indices (..., 4) and weights (..., 4) of grid points ``uv`` (..., 2), clamped to the grid."""
    u = uv[..., 0].clamp(0, w - 1)
    v = uv[..., 1].clamp(0, h - 1)
    u0, v0 = u.floor().clamp(max=w - 2 if w > 1 else 0), v.floor().clamp(max=h - 2 if h > 1 else 0)
    fu, fv = u - u0, v - v0
    u0, v0 = u0.long(), v0.long()
    u1, v1 = (u0 + 1).clamp(max=w - 1), (v0 + 1).clamp(max=h - 1)
    index = torch.stack([v0 * w + u0, v0 * w + u1, v1 * w + u0, v1 * w + u1], -1)
    weight = torch.stack([(1 - fu) * (1 - fv), fu * (1 - fv), (1 - fu) * fv, fu * fv], -1)
    return index, weight


def sample_tokens(x: torch.Tensor, grid: TokenGrid, frame: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of per-token features at grid points of given frames.

    Args:
        x: (B, L, ...) per-token features, L = frames_total * h * w in the backbone's order.
        frame: (B, P) frame index (``grid.frame_index``); uv: (B, P, 2) or (B, P, S, 2) grid coordinates.

    Returns:
        (B, P, ...) or (B, P, S, ...).
    """
    B, P = frame.shape
    index, weight = _bilinear(uv, grid.h, grid.w)  # (B, P[, S], 4)
    offset = (frame * grid.per_frame).view(B, P, *([1] * (index.dim() - 2)))
    flat = (index + offset).reshape(B, -1)  # (B, P*S*4)
    gathered = torch.gather(x, 1, flat.view(B, -1, *([1] * (x.dim() - 2))).expand(-1, -1, *x.shape[2:]))
    gathered = gathered.view(*index.shape, *x.shape[2:])
    w = weight.view(*weight.shape, *([1] * (x.dim() - 2))).to(x.dtype)
    return (gathered * w).sum(index.dim() - 1)


def frame_logits(query: torch.Tensor, key: torch.Tensor, grid: TokenGrid, frame: torch.Tensor) -> torch.Tensor:
    """Attention logits of sampled queries against every key of one frame each, averaged over heads.

    Memory is O(B x P x tokens per frame): the keys of a frame are read once per frame that some query targets.

    Args:
        query: (B, P, heads, d) the sampled queries (e.g. from :func:`sample_tokens` on a layer's Q).
        key: (B, L, heads, d) the layer's keys.
        frame: (B, P) target frame index of each query.

    Returns:
        (B, P, h * w) logits ``mean_heads(q . k) / sqrt(d)``.
    """
    B, P, heads, d = query.shape
    keys = key.view(B, -1, grid.per_frame, heads, d)  # (B, frames_total, n, heads, d)
    out = query.new_empty(B, P, grid.per_frame)
    scale = 1.0 / (math.sqrt(d) * heads)
    for b in range(B):
        for f in frame[b].unique().tolist():
            sel = (frame[b] == f).nonzero().squeeze(1)
            out[b, sel] = torch.einsum("phd,nhd->pn", query[b, sel], keys[b, f]) * scale
    return out


def frame_logits_per_head(query: torch.Tensor, key: torch.Tensor, grid: TokenGrid,
                          frame: torch.Tensor) -> torch.Tensor:
    """Attention logits of sampled queries against every key of one frame each, head by head (what each head's
    softmax sees; :func:`frame_logits` is their mean over heads).

    Memory is O(B x P x heads x tokens per frame).

    Args:
        query: (B, P, heads, d) the sampled queries; key: (B, L, heads, d) the layer's keys.
        frame: (B, P) target frame index of each query.

    Returns:
        (B, P, heads, h * w) logits ``q . k / sqrt(d)``.
    """
    B, P, heads, d = query.shape
    keys = key.view(B, -1, grid.per_frame, heads, d)  # (B, frames_total, n, heads, d)
    out = query.new_empty(B, P, heads, grid.per_frame)
    scale = 1.0 / math.sqrt(d)
    for b in range(B):
        for f in frame[b].unique().tolist():
            sel = (frame[b] == f).nonzero().squeeze(1)
            out[b, sel] = torch.einsum("phd,nhd->phn", query[b, sel], keys[b, f]) * scale
    return out


def soft_labels(grid: TokenGrid, uv: torch.Tensor) -> torch.Tensor:
    """Target distributions (B, P, h * w) over a frame's tokens: the bilinear weights of the true grid point on
    its (up to) four neighbouring tokens."""
    index, weight = _bilinear(uv, grid.h, grid.w)
    labels = uv.new_zeros(*uv.shape[:-1], grid.per_frame)
    return labels.scatter_add_(-1, index, weight.to(labels.dtype))


def argmax_uv(logits: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
    """Grid coordinates (B, P, 2) of the best-scoring token."""
    i = logits.argmax(-1)
    return torch.stack([i % grid.w, i // grid.w], -1).to(logits.dtype)


SOFTARGMAX_MODES = ("softmax", "eq3")


def soft_argmax_uv(logits: torch.Tensor, grid: TokenGrid, radius: float | None = None,
                   temperature: float = 1.0, mode: str = "softmax") -> torch.Tensor:
    """Expected grid position (B, P, 2) under weights over a frame's tokens, restricted to tokens within
    ``radius`` of the argmax when given (Track4Gen's windowed soft-argmax).

    Args:
        logits: (B, P, h * w) scores of each query against one frame's tokens.
        mode: ``softmax``: weights ``softmax(logits / temperature)``. ``eq3``: Track4Gen's Eq. 3, the scores
            themselves (raw cosine similarities, ``temperature`` unused) normalised by their sum,
            ``sum_p S(p) x_p / sum_p S(p)`` over the window. Eq. 3 is a weighted mean only where ``S >= 0``, which
            the paper's refined features guarantee (its refiner ends with a ReLU: cosines of non-negative vectors
            are >= 0). On signed features a negative score would push the estimate away and its denominator can
            cross zero (an unbounded estimate), so scores are clamped at 0: Eq. 3 exactly on the paper's features.
            Where no score in the window is positive the estimate is the argmax.
    """
    if mode not in SOFTARGMAX_MODES:
        raise ValueError(f"soft-argmax mode: expected one of {SOFTARGMAX_MODES}, got {mode!r}")
    ys, xs = torch.meshgrid(torch.arange(grid.h, device=logits.device), torch.arange(grid.w, device=logits.device),
                            indexing="ij")
    coords = torch.stack([xs, ys], -1).reshape(-1, 2).to(logits.dtype)  # (n, 2)
    peak = argmax_uv(logits, grid)  # (B, P, 2)
    far = None if radius is None else (coords[None, None] - peak[..., None, :]).norm(dim=-1) > radius
    if mode == "eq3":
        weight = logits.clamp_min(0)
        if far is not None:
            weight = weight.masked_fill(far, 0.0)
        total = weight.sum(-1, keepdim=True)  # (B, P, 1)
        return torch.where(total > 0, (weight @ coords) / total.clamp_min(torch.finfo(total.dtype).tiny), peak)
    z = logits / temperature
    if far is not None:
        z = z.masked_fill(far, float("-inf"))
    return F.softmax(z, -1) @ coords
