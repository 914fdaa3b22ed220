"""One training step's track supervision: sample ground-truth pairs, read the captured Q/K (MVTrack4Gen) and the
refined features (Track4Gen), and return the weighted losses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from einops import rearrange
from torch import nn

from mvtrack.data.pairs import PAIR_KINDS, TrackPairs, sample_pairs
from mvtrack.models.refiner import REFINER_STYLES

from .capture import QKCapture
from .head import TrackHead
from .losses import corr_loss, corr_loss_per_head, refiner_loss, track_loss
from .mvtap_head import MultiViewTrackHead
from .tokens import (
    SOFTARGMAX_MODES,
    TokenGrid,
    frame_logits,
    frame_logits_per_head,
    sample_tokens,
    soft_argmax_uv,
    soft_labels,
)

TRAINABLE = ("all", "track4gen")  # tracking.trainable
HEADS = ("pair", "mvtap")  # tracking.head
CORR_HEADS = ("mean", "per_head")  # tracking.corr_heads (or a list of head indices)


@dataclass
class TrackingConfig:
    """Track supervision of a training run; all off by default (the camera-only baseline)."""

    layers: list = field(default_factory=list)  # MVTrack4Gen: supervised self-attention layers (block indices)
    corr_weight: float = 0.01  # L_corr
    track_weight: float = 0.01  # L_track (Huber + BCE of the head)
    pairs: int = 64  # sampled correspondences per clip
    kinds: list = field(default_factory=lambda: list(PAIR_KINDS))
    head_levels: int | None = None  # pyramid levels (None: 3 for the pair head, 4 for mvtap)
    head_radius: int | None = None  # correlation window radius in tokens (None: 2 pair, 3 mvtap)
    head_iters: int | None = None  # refinement steps (None: 3 pair, 4 mvtap)
    # pair: TrackHead, one (query, target frame) pair at a time; mvtap: MultiViewTrackHead, each query through every
    # view and frame jointly (``pairs`` queries per clip then, each at a visible point of one view and frame)
    head: str = "pair"
    head_dim: int = 64  # mvtap: width of the update transformer (attention heads of 32 channels; MV-TAP: 384)
    head_depth: int = 2  # mvtap: blocks of attention over time, views and tracks (MV-TAP: 3)
    head_query_radius: int = 0  # mvtap: query patch radius (0: the Q-vector; > 0: 4D correlation, (2r+1)^2 memory)
    # L_corr on the head-averaged logits (mean: a map no head computes; what the CPU-scale experiments used, kept as
    # the default so that their configs and checkpoints are unchanged), on each head's own attention map averaged
    # over heads (per_head: the published-method recipes, whose loss is on attention maps), or on the listed head
    # indices only (e.g. [0, 2]; the others unsupervised)
    corr_heads: Any = "mean"
    refiner_block: int | None = None  # Track4Gen: the block whose hidden states are refined (None: off)
    refiner_weight: float = 8.0
    refiner_radius: float = 2.0  # tokens
    refiner_temperature: float = 0.1
    refiner_style: str = "bottleneck"  # bottleneck (3 convs, D/4 wide) or paper (Track4Gen's 8 full-width convs)
    refiner_softargmax: str = "softmax"  # softmax (of cosines / refiner_temperature) or eq3 (Track4Gen's Eq. 3)
    # all: every parameter trains; track4gen: only each block's self-attention, the refiner and its zero conv (the
    # paper's "temporal blocks + refiner + zero conv"; Wan has no separate temporal blocks, see track4gen_trainable)
    trainable: str = "all"

    def __post_init__(self):
        self.layers = [int(i) for i in self.layers]
        self.kinds = list(self.kinds)
        unknown = set(self.kinds) - set(PAIR_KINDS)
        if unknown or not self.kinds:
            raise ValueError(f"tracking.kinds: expected a non-empty subset of {PAIR_KINDS}, got {self.kinds}")
        for name in ("corr_weight", "track_weight", "refiner_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"tracking.{name}: expected >= 0, got {getattr(self, name)}")
        if self.pairs < 1:
            raise ValueError(f"tracking.pairs: expected >= 1, got {self.pairs}")
        if self.head not in HEADS:
            raise ValueError(f"tracking.head: expected one of {', '.join(HEADS)}, got {self.head!r}")
        for name, pair, mvtap in (("head_levels", 3, 4), ("head_radius", 2, 3), ("head_iters", 3, 4)):
            if getattr(self, name) is None:
                setattr(self, name, pair if self.head == "pair" else mvtap)
        for name, low in (("head_levels", 1), ("head_radius", 0), ("head_iters", 1), ("head_depth", 1),
                          ("head_query_radius", 0)):
            if getattr(self, name) < low:
                raise ValueError(f"tracking.{name}: expected >= {low}, got {getattr(self, name)}")
        if self.head_dim < 32 or self.head_dim % 32:
            raise ValueError(f"tracking.head_dim: expected a positive multiple of 32, got {self.head_dim}")
        heads = self.corr_heads
        if isinstance(heads, (list, tuple)):
            if not heads or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 0 for h in heads) or len(
                    set(heads)) < len(heads):
                raise ValueError(f"tracking.corr_heads: expected distinct head indices >= 0, got {heads}")
            self.corr_heads = [int(h) for h in heads]
        elif heads not in CORR_HEADS:
            raise ValueError(f"tracking.corr_heads: expected one of {', '.join(CORR_HEADS)} or a list of head "
                             f"indices, got {heads!r}")
        for name, choices in (("refiner_style", REFINER_STYLES), ("refiner_softargmax", SOFTARGMAX_MODES),
                              ("trainable", TRAINABLE)):
            if getattr(self, name) not in choices:
                raise ValueError(f"tracking.{name}: expected one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.trainable == "track4gen" and self.refiner_block is None:
            raise ValueError("tracking.trainable: track4gen trains the refiner and the self-attention it feeds; it "
                             "needs tracking.refiner_block")

    @property
    def mvtrack4gen(self) -> bool:
        return bool(self.layers) and (self.corr_weight > 0 or self.track_weight > 0)

    @property
    def track4gen(self) -> bool:
        return self.refiner_block is not None and self.refiner_weight > 0

    @property
    def enabled(self) -> bool:
        return self.mvtrack4gen or self.track4gen


class TrackSupervision(nn.Module):
    """Holds the tracking head (its parameters train with the model) and the Q/K capture of the supervised layers.

    Call :meth:`losses` right after the model's forward on a batch whose tracks are in the model's input pixels.
    """

    def __init__(self, config: TrackingConfig, model):
        super().__init__()
        self.config = config
        self.head = None
        if config.mvtrack4gen and config.track_weight > 0 and config.head == "pair":
            self.head = TrackHead(len(config.layers), config.head_levels, config.head_radius, config.head_iters)
        elif config.mvtrack4gen and config.track_weight > 0:
            self.head = MultiViewTrackHead(len(config.layers), config.head_levels, config.head_radius,
                                           config.head_iters, dim=config.head_dim, depth=config.head_depth,
                                           heads=config.head_dim // 32, query_radius=config.head_query_radius)
        self.capture = QKCapture(model, config.layers) if config.mvtrack4gen else None
        heads = getattr(model, "wan", model).config.num_attention_heads
        if config.mvtrack4gen and isinstance(config.corr_heads, list) and max(config.corr_heads) >= heads:
            raise ValueError(f"tracking.corr_heads: expected head indices in [0, {heads}) (the model's attention "
                             f"heads), got {config.corr_heads}")
        if config.track4gen and getattr(model, "refiner", None) is None:
            raise ValueError("tracking.refiner_block is set but the model has no refiner (build it with refiner_block)")

    def losses(self, model, tracks: torch.Tensor, visible: torch.Tensor, size: tuple[int, int],
                  generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """Weighted losses ``{"corr", "track", "refiner"}`` (those enabled) and their sum under ``"total"``.

        Args:
            tracks: (B, V, F, N, 2) pixels of the model input; visible: (B, V, F, N).
            size: (H, W) of the model input (pixel space: tracks and tokens share these pixels).
        """
        cfg = self.config
        B, V, F = tracks.shape[:3]
        grid = TokenGrid.of(model, V, F, *size)
        # Pairs are drawn on the CPU (the trainer's generators are CPU generators), then moved.
        pairs = sample_pairs(tracks.cpu(), visible.cpu(), cfg.pairs, tuple(cfg.kinds), require_dst_visible=True,
                             occluded_share=0.125 if isinstance(self.head, TrackHead) else 0.0, generator=generator)
        pairs = TrackPairs(**{k: v.to(tracks.device) for k, v in vars(pairs).items()})
        src_f = grid.frame_index(pairs.src_view, pairs.src_time)
        dst_f = grid.frame_index(pairs.dst_view, pairs.dst_time)
        src_uv, dst_uv = grid.to_grid(pairs.src_xy.float()), grid.to_grid(pairs.dst_xy.float())
        seen = pairs.valid & pairs.dst_visible
        out: dict[str, torch.Tensor] = {}
        if self.capture is not None:
            full_q, queries, keys, logits = [], [], [], []  # logits: (B, P, n), or (B, P, heads, n) per head
            per_head = cfg.corr_heads != "mean"
            for layer in cfg.layers:
                q, k = self.capture.qk(layer)
                full_q.append(q)
                queries.append(sample_tokens(q, grid, src_f, src_uv))
                keys.append(k)
                logits.append((frame_logits_per_head if per_head else frame_logits)(queries[-1], k, grid, dst_f))
            if cfg.corr_weight > 0:
                labels = soft_labels(grid, dst_uv)
                chosen = cfg.corr_heads if isinstance(cfg.corr_heads, list) else None
                out["corr"] = cfg.corr_weight * sum(
                    corr_loss_per_head(lg, labels, seen, chosen) if per_head else corr_loss(lg, labels, seen)
                    for lg in logits) / len(logits)
            if isinstance(self.head, TrackHead):
                mean = torch.stack([lg.mean(2) if per_head else lg for lg in logits]).mean(0)  # (B, P, n)
                init = soft_argmax_uv(mean.detach().float(), grid)
                estimates, vis_logit = self.head(queries, keys, grid, dst_f, init)
                huber, bce = track_loss(estimates, vis_logit, dst_uv, pairs.dst_visible, pairs.valid)
                out["track"] = cfg.track_weight * (huber + bce)
            elif self.head is not None:  # mvtap: queries of their own, each followed through every view and frame
                q_view, q_time, q_track, q_valid = (x.to(tracks.device) for x in sample_queries(
                    visible.cpu(), cfg.pairs, generator))
                b = torch.arange(B, device=tracks.device)[:, None]
                target_uv = grid.to_grid(rearrange(tracks[b, :, :, q_track].float(), "b p v f c -> b p (v f) c"))
                target_vis = rearrange(visible[b, :, :, q_track], "b p v f -> b p (v f)") & q_valid[..., None]
                q_frame = grid.frame_index(q_view, q_time)
                estimates, vis_logit = self.head(full_q, keys, grid, q_frame,
                                                 grid.to_grid(tracks[b, q_view, q_time, q_track].float()),
                                                 valid=q_valid)
                huber, bce = track_loss(estimates, vis_logit, target_uv, target_vis,
                                        q_valid[..., None].expand_as(target_vis))
                out["track"] = cfg.track_weight * (huber + bce)
        if cfg.track4gen:
            out["refiner"] = cfg.refiner_weight * refiner_loss(
                model.refined, grid, src_f, src_uv, dst_f, dst_uv, seen, cfg.refiner_radius, cfg.refiner_temperature,
                cfg.refiner_softargmax)
        out["total"] = sum(out.values()) if out else tracks.new_zeros(())
        return out

    def clear(self, model=None) -> None:
        """Drop the captured Q/K and refined features of the last step (and the graph they hold)."""
        if self.capture is not None:
            self.capture.clear()
        if model is not None and getattr(model, "refined", None) is not None:
            model.refined = None


def sample_queries(visible: torch.Tensor, num: int, generator: torch.Generator | None = None):
    """Query points of the multi-view head: ``num`` per clip, uniform over the visible (view, frame, track) entries
    (with replacement, as :func:`~mvtrack.data.pairs.sample_pairs` draws its sources).

    Args:
        visible: (B, V, F, N) bool; generator: on ``visible``'s device.

    Returns:
        view, time, track (B, P) long and valid (B, P) bool (False for a clip without a visible point; then 0).
    """
    B, V, T, N = visible.shape
    flat = visible.reshape(B, V * T * N).float()
    has = flat.sum(-1) > 0
    index = torch.multinomial(torch.where(has[:, None], flat, torch.ones_like(flat)), num, replacement=True,
                              generator=generator)  # (B, P)
    index = torch.where(has[:, None], index, torch.zeros_like(index))
    vt, track = index // N, index % N
    return vt // T, vt % T, track, has[:, None].expand(B, num)
