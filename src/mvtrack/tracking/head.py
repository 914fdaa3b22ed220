"""MVTrack4Gen's tracking head: refine a position estimate from multi-scale local correlations of a query with a
target frame's keys, and predict visibility."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .tokens import TokenGrid, frame_logits


def _pooled_keys(key: torch.Tensor, grid: TokenGrid, levels: int) -> list[tuple[torch.Tensor, TokenGrid]]:
    """Keys average-pooled 2^l times over each frame's token grid: [(keys (B, L_l, heads, d), grid_l)]."""
    B, L, heads, d = key.shape
    frames = L // grid.per_frame
    maps = key.reshape(B * frames, grid.h, grid.w, heads * d).permute(0, 3, 1, 2)
    out = [(key, grid)]
    for _ in range(1, levels):
        if min(maps.shape[-2:]) < 2:
            break
        maps = F.avg_pool2d(maps, 2, ceil_mode=True)
        h, w = maps.shape[-2:]
        g = TokenGrid(grid.views, grid.frames, h, w, grid.ph * grid.h // h, grid.pw * grid.w // w)
        out.append((maps.permute(0, 2, 3, 1).reshape(B, frames * h * w, heads, d), g))
    return out


class TrackHead(nn.Module):
    """Iterative position refinement from local correlation windows (RAFT / CoTracker style, on Q/K).

    For each supervised layer and each pyramid level, the query's correlation with the keys in a
    ``(2 radius + 1)^2`` window around the current estimate (bilinear, averaged over heads) is read; an MLP maps
    the concatenated windows to a position update and a visibility logit. Positions are in token-grid units.

    Args:
        num_layers: supervised attention layers feeding the head.
        levels: pyramid levels (keys pooled 1x, 2x, 4x, ...); radius: window radius in tokens of each level.
        iters: refinement steps (weights shared).
    """

    def __init__(self, num_layers: int, levels: int = 3, radius: int = 2, iters: int = 3, hidden: int = 128):
        super().__init__()
        self.levels, self.radius, self.iters = levels, radius, iters
        r = torch.arange(-radius, radius + 1, dtype=torch.float32)
        self.register_buffer("offsets", torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2),
                             persistent=False)
        features = num_layers * levels * len(self.offsets)
        self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.delta = nn.Linear(hidden, 2)
        self.visibility = nn.Linear(hidden, 1)
        nn.init.zeros_(self.delta.weight)  # starts by trusting the initial estimate
        nn.init.zeros_(self.delta.bias)

    def correlations(self, queries, pyramids, frame: torch.Tensor, uv: torch.Tensor) -> torch.Tensor:
        """(B, P, features) local correlations around ``uv`` (B, P, 2) for every layer and level.

        As RAFT: the query's correlation with every token of its target frame is computed once per level (B x P x
        tokens, no key gathers), then read bilinearly in the window (zeros outside the frame).
        """
        B, P = frame.shape
        feats = []
        for q, pyramid in zip(queries, pyramids):
            for level, (keys, g) in enumerate(pyramid):
                volume = frame_logits(q, keys, g, frame).view(B * P, 1, g.h, g.w)
                centre = (uv + 0.5) / 2**level - 0.5  # grid coordinates at this level
                pts = centre[:, :, None, :] + self.offsets.to(uv.dtype)  # (B, P, S, 2)
                size = pts.new_tensor([max(g.w - 1, 1), max(g.h - 1, 1)])
                norm = (2 * pts / size - 1).view(B * P, 1, -1, 2)  # token centres at -1 and 1: align_corners
                window = F.grid_sample(volume, norm.to(volume.dtype), align_corners=True, padding_mode="zeros")
                feats.append(window.view(B, P, -1))
        # pad missing levels (grids too small to pool) with zeros so the MLP input stays fixed
        width = self.levels * len(self.offsets) * len(queries)
        out = torch.cat(feats, -1)
        return F.pad(out, (0, width - out.shape[-1]))

    def forward(self, queries: list[torch.Tensor], keys: list[torch.Tensor], grid: TokenGrid, frame: torch.Tensor,
                init_uv: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """
        Args:
            queries: per layer (B, P, heads, d) sampled queries; keys: per layer (B, L, heads, d).
            frame: (B, P) target frame index; init_uv: (B, P, 2) initial estimate (grid units).

        Returns:
            estimates: ``iters`` tensors (B, P, 2) in grid units; visibility logits (B, P).
        """
        # float32 whatever the backbone's dtype (bf16 Q/K under autocast): the head's weights are float32
        queries, keys = [q.float() for q in queries], [k.float() for k in keys]
        pyramids = [_pooled_keys(k, grid, self.levels) for k in keys]
        uv, estimates = init_uv.float().detach(), []
        for _ in range(self.iters):
            hidden = self.mlp(self.correlations(queries, pyramids, frame, uv))
            uv = uv.detach() + self.delta(hidden)
            estimates.append(uv)
        return estimates, self.visibility(hidden).squeeze(-1)
