"""MV-TAP-style tracking head on attention Q/K (MVTrack4Gen's ``L_track``, ``tracking.head: mvtap``): a query point
is followed through every view and frame of the clip jointly, by iterative updates of a small transformer whose
tokens are the (track, view, frame) estimates, fed multi-scale local correlations of the query's Q with each frame's
K around the current estimates (CoTracker3's update loop with MV-TAP's attention over views).

Positions are token-grid coordinates (:class:`~mvtrack.tracking.tokens.TokenGrid`: token centres at integers),
frames are indexed ``view * frames + time`` (the backbone's ``(v f h w)`` order), as everywhere in ``tracking``.

Memory: the backbone's attention map is never formed. Each query's Q (patch) is correlated once per forward with
every token of every frame at each pyramid level: ``B x P x S_q x V x F x h w (4/3 over the levels)`` numbers per
supervised layer, with ``S_q = (2 query_radius + 1)^2`` (1 by default: O(queries x views x frames x tokens per
frame), the pair head's bound times V x F). The windows read from it each iteration are ``B x P x V x F x S_q x
(2 radius + 1)^2`` per layer and level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from .head import _pooled_keys
from .tokens import TokenGrid, sample_tokens, soft_argmax_uv


def _window(radius: int) -> torch.Tensor:
    """(S, 2) integer offsets (du, dv) of a (2 radius + 1)^2 window, rows (dv) outer, columns (du) inner."""
    r = torch.arange(-radius, radius + 1, dtype=torch.float32)
    return torch.stack(torch.meshgrid(r, r, indexing="xy"), -1).reshape(-1, 2)


def _sincos(n: int, dim: int, device) -> torch.Tensor:
    """(n, dim) fixed sine-cosine embedding of positions 0..n-1 (the transformer's frame embedding)."""
    pos = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, device=device, dtype=torch.float32) / (dim // 2))
    return torch.cat([(pos * freq).sin(), (pos * freq).cos()], -1)


class _Block(nn.Module):
    """Pre-norm self-attention and MLP over the middle axis of (N, S, dim) tokens (one axis of the track grid)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (N, S, dim); mask: (N, S) bool, the tokens that may be attended to (None: all)."""
        q, k, v = rearrange(self.qkv(self.norm1(x)), "n s (three h e) -> three n h s e", three=3, h=self.heads)
        bias = None if mask is None else mask[:, None, None, :]  # (N, 1, 1, S)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (N, h, S, e)
        x = x + self.proj(rearrange(out, "n h s e -> n s (h e)"))
        return x + self.mlp(self.norm2(x))


class MultiViewTrackHead(nn.Module):
    """Track queries through every view and frame of a clip at once from captured attention Q/K.

    For each query (a point of one view and frame) and each of the clip's V x F frames, the head keeps a position
    estimate and a visibility logit. Each of ``iters`` updates (weights shared) reads, per supervised layer and
    pyramid level (Q and K average-pooled 1x, 2x, 4x, 8x per frame), the correlation of the query's Q (its patch of
    ``(2 query_radius + 1)^2`` Q-vectors, a 4D correlation when > 0) with K in a ``(2 radius + 1)^2`` window around
    the estimate (logits ``q . k / sqrt(d)`` averaged over heads, as the attention's; zero outside the frame; a
    level the token grid is too small to pool is all zeros), embeds it with an MLP shared over layers and levels,
    adds the estimate's motion to the neighbouring frames of its view (Fourier features), the current visibility,
    whether the token is the query's own frame or view, and a frame embedding, and runs ``depth`` blocks of
    attention over time (the frames of a view), over views (the same time) and, optionally, over tracks (the
    queries of a clip at the same frame); a zero-initialised linear layer predicts the position and visibility
    updates.

    Args:
        num_layers: supervised attention layers feeding the head.
        levels: pyramid levels; radius: correlation window radius in tokens of each level.
        iters: updates; the estimate is detached before each (CoTracker).
        dim, depth, heads, mlp_ratio: the update transformer (``depth`` blocks of time, view, track attention).
            The defaults are CPU-scale (a 64-pixel S model); MV-TAP's is 384 wide, 3 blocks deep, 8 heads, ratio 4.
        query_radius: radius of the query patch (0: the query's Q-vector alone; CoTracker3 / MV-TAP use 3).
        corr_dim: width of the embedding of one (layer, level) correlation window (MV-TAP: 256).
        track_attention: attention over the clip's queries (MV-TAP does it through virtual tracks).
        motion_degrees: octaves of the Fourier features of the frame-to-frame motion.
    """

    def __init__(self, num_layers: int, levels: int = 4, radius: int = 3, iters: int = 4, dim: int = 64,
                 depth: int = 2, heads: int = 2, mlp_ratio: float = 2.0, query_radius: int = 0, corr_dim: int = 32,
                 track_attention: bool = True, motion_degrees: int = 6):
        super().__init__()
        if num_layers < 1 or levels < 1 or radius < 0 or iters < 1 or depth < 1 or query_radius < 0:
            raise ValueError(f"MultiViewTrackHead: expected num_layers, levels, iters, depth >= 1 and radius, "
                             f"query_radius >= 0, got {num_layers}, {levels}, {iters}, {depth}, {radius}, "
                             f"{query_radius}")
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"MultiViewTrackHead: dim must split into {heads} heads of even width, got {dim}")
        self.num_layers, self.levels, self.radius, self.iters = num_layers, levels, radius, iters
        self.query_radius, self.track_attention, self.motion_degrees = query_radius, track_attention, motion_degrees
        self.register_buffer("offsets", _window(radius), persistent=False)  # (S_w, 2)
        self.register_buffer("query_offsets", _window(query_radius), persistent=False)  # (S_q, 2)
        window = len(self.offsets) * len(self.query_offsets)
        self.corr_mlp = nn.Sequential(nn.Linear(window, 2 * corr_dim), nn.GELU(approximate="tanh"),
                                      nn.Linear(2 * corr_dim, corr_dim))
        motion = 4 * (1 + 2 * motion_degrees)
        self.embed = nn.Linear(num_layers * levels * corr_dim + motion + 3, dim)
        names = ("time", "view", "track") if track_attention else ("time", "view")
        self.blocks = nn.ModuleList(
            nn.ModuleDict({n: _Block(dim, heads, mlp_ratio) for n in names}) for _ in range(depth))
        self.norm_out = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, 3)  # (du, dv, visibility logit) updates
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linear layers; the update layer at zero, so the head starts by keeping its initial estimates."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)

    # 1. Correlations ---------------------------------------------------------------------------------------------

    def volumes(self, queries: list[torch.Tensor], keys: list[torch.Tensor], grid: TokenGrid, src_frame: torch.Tensor,
                src_uv: torch.Tensor) -> list[list[torch.Tensor | None]]:
        """Correlation of each query patch with every token of every frame, per layer and level.

        Args:
            queries, keys: per layer (B, L, heads, d), the layer's Q and K over the whole clip.
            src_frame: (B, P) frame of each query; src_uv: (B, P, 2) its grid position.

        Returns:
            per layer, per level: (B * P * T, S_q, h_l, w_l) head-averaged logits (T = V x F frames), or None for a
            level the grid is too small to pool.
        """
        out = []
        for q, k in zip(queries, keys):
            qp, kp = _pooled_keys(q, grid, self.levels), _pooled_keys(k, grid, self.levels)
            per_level = []
            for level in range(self.levels):
                if level >= len(kp):
                    per_level.append(None)
                    continue
                (ql, g), (kl, _) = qp[level], kp[level]
                centre = (src_uv + 0.5) / 2**level - 0.5  # grid coordinates at this level
                patch = sample_tokens(ql, g, src_frame, centre[:, :, None] + self.query_offsets.to(centre))
                heads, d = patch.shape[-2:]  # patch: (B, P, S_q, heads, d)
                vol = torch.einsum("bpshd,bnhd->bpsn", patch, kl) / (math.sqrt(d) * heads)  # (B, P, S_q, T*h*w)
                per_level.append(rearrange(vol, "b p s (t y x) -> (b p t) s y x", y=g.h, x=g.w))
            out.append(per_level)
        return out

    def correlations(self, volumes: list[list[torch.Tensor | None]], uv: torch.Tensor) -> torch.Tensor:
        """Windows of the volumes around the estimates ``uv`` (B, P, T, 2): (B, P, T, layers, levels, S_q, S_w),
        bilinear, zeros outside the frame (window offsets as ``offsets``, query patch as ``query_offsets``)."""
        B, P, T, _ = uv.shape
        S_q, S_w = len(self.query_offsets), len(self.offsets)
        windows = []
        for per_level in volumes:
            for level, vol in enumerate(per_level):
                if vol is None:
                    windows.append(uv.new_zeros(B, P, T, S_q, S_w))
                    continue
                h, w = vol.shape[-2:]
                pts = ((uv + 0.5) / 2**level - 0.5)[..., None, :] + self.offsets.to(uv)  # (B, P, T, S_w, 2)
                norm = (2 * pts + 1) / pts.new_tensor([w, h]) - 1  # token centres, align_corners=False
                win = F.grid_sample(vol, norm.reshape(B * P * T, 1, S_w, 2).to(vol.dtype), align_corners=False,
                                    padding_mode="zeros")  # (B*P*T, S_q, 1, S_w)
                windows.append(win.view(B, P, T, S_q, S_w).to(uv.dtype))
        return torch.stack(windows, 3).view(B, P, T, len(volumes), self.levels, S_q, S_w)

    # 2. Update transformer ---------------------------------------------------------------------------------------

    def _motion(self, uv: torch.Tensor, grid: TokenGrid) -> torch.Tensor:
        """Fourier features (B, P, T, 4 (1 + 2 degrees)) of the estimate's motion to the next and from the previous
        frame of its view, in frame widths."""
        uv = rearrange(uv, "b p (v f) c -> b p v f c", v=grid.views) / uv.new_tensor([grid.w, grid.h])
        step = uv[..., 1:, :] - uv[..., :-1, :]  # (B, P, V, F-1, 2)
        x = torch.cat([F.pad(step, (0, 0, 0, 1)), F.pad(step, (0, 0, 1, 0))], -1)  # (B, P, V, F, 4)
        scaled = (x[..., None, :] * 2.0 ** torch.arange(self.motion_degrees, device=x.device)[:, None]).flatten(-2)
        return rearrange(torch.cat([x, scaled.sin(), scaled.cos()], -1), "b p v f c -> b p (v f) c")

    def _transformer(self, x: torch.Tensor, grid: TokenGrid, valid: torch.Tensor) -> torch.Tensor:
        """x: (B, P, T, dim) -> (B, P, T, dim); ``valid`` (B, P): queries that other tracks may attend to."""
        B, P = valid.shape
        V, Fr = grid.views, grid.frames
        keys = valid | ~valid.any(-1, keepdim=True)  # a clip without valid queries attends to all (no empty rows)
        keys = keys[:, None].expand(B, V * Fr, P).reshape(B * V * Fr, P)
        for block in self.blocks:
            x = rearrange(x, "b p (v f) d -> (b p v) f d", v=V)
            x = rearrange(block["time"](x), "(b p v) f d -> (b p f) v d", b=B, p=P)
            x = rearrange(block["view"](x), "(b p f) v d -> b p (v f) d", b=B, p=P)
            if self.track_attention:
                x = rearrange(x, "b p t d -> (b t) p d")
                x = rearrange(block["track"](x, keys), "(b t) p d -> b p t d", b=B)
        return x

    def forward(self, queries: list[torch.Tensor], keys: list[torch.Tensor], grid: TokenGrid,
                src_frame: torch.Tensor, src_uv: torch.Tensor, init_uv: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> tuple[list[torch.Tensor], torch.Tensor]:
        """
        Args:
            queries, keys: per supervised layer (B, L, heads, d), the layer's Q and K, L = V * F * h * w.
            src_frame: (B, P) frame index of each query (``grid.frame_index``); src_uv: (B, P, 2) its position.
            init_uv: (B, P, T, 2) initial estimates in every frame (T = V * F); default: the soft-argmax of the
                layers' head-averaged attention of the query over each frame (detached), the query's own position
                in its frame.
            valid: (B, P) bool, queries to use (others are not attended to by the other tracks); default all.

        Returns:
            estimates: ``iters`` tensors (B, P, T, 2) in grid units; visibility logits (B, P, T).
        """
        B, P = src_frame.shape
        T = grid.views * grid.frames
        # float32 whatever the backbone's dtype (bf16 Q/K under autocast): sub-token positions need the precision
        queries, keys = [q.float() for q in queries], [k.float() for k in keys]
        if init_uv is not None:
            init_uv = init_uv.float()
        if len(queries) != self.num_layers or len(keys) != self.num_layers:
            raise ValueError(f"MultiViewTrackHead: expected Q and K of {self.num_layers} layers, got "
                             f"{len(queries)} and {len(keys)}")
        for x in (*queries, *keys):
            if x.dim() != 4 or x.shape[:2] != (B, T * grid.per_frame):
                raise ValueError(f"MultiViewTrackHead: Q/K expected (B, L, heads, d) = ({B}, {T * grid.per_frame}, "
                                 f"heads, d), got {tuple(x.shape)}")
        if src_uv.shape != (B, P, 2):
            raise ValueError(f"src_uv: expected {(B, P, 2)}, got {tuple(src_uv.shape)}")
        if init_uv is not None and init_uv.shape != (B, P, T, 2):
            raise ValueError(f"init_uv: expected {(B, P, T, 2)}, got {tuple(init_uv.shape)}")
        valid = torch.ones(B, P, dtype=torch.bool, device=src_uv.device) if valid is None else valid
        dtype = self.out.weight.dtype
        src_uv = src_uv.to(dtype)

        # 1. Correlation volumes (once: they do not depend on the estimates) and the initial estimates
        volumes = self.volumes(queries, keys, grid, src_frame, src_uv)
        own = torch.arange(T, device=src_frame.device) == src_frame[..., None]  # (B, P, T): the query's frame
        if init_uv is None:
            centre = len(self.query_offsets) // 2
            logits = torch.stack([v[0][:, centre] for v in volumes]).mean(0).detach()  # (B*P*T, h, w)
            init_uv = soft_argmax_uv(logits.reshape(B, P, T, -1).float(), grid)
            init_uv = torch.where(own[..., None], src_uv[:, :, None], init_uv)
        same_view = (torch.arange(T, device=own.device) // grid.frames) == (src_frame // grid.frames)[..., None]
        flags = torch.stack([own, same_view], -1).to(dtype)  # (B, P, T, 2)
        frame_emb = _sincos(grid.frames, self.embed.out_features, src_uv.device).to(dtype).repeat(grid.views, 1)

        # 2. Iterative updates
        uv, vis = init_uv.detach().to(dtype), src_uv.new_zeros(B, P, T)
        estimates = []
        for _ in range(self.iters):
            uv = uv.detach()
            corr = self.corr_mlp(self.correlations(volumes, uv).to(dtype).flatten(-2))  # (B, P, T, layers, levels, c)
            x = torch.cat([corr.flatten(-3), self._motion(uv, grid), vis[..., None], flags], -1)
            x = self._transformer(self.embed(x) + frame_emb, grid, valid)  # (B, P, T, dim)
            delta = self.out(self.norm_out(x))  # (B, P, T, 3)
            uv, vis = uv + delta[..., :2], vis + delta[..., 2]
            estimates.append(uv)
        return estimates, vis
