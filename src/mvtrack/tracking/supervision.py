"""One training step's track supervision: sample ground-truth pairs, read the captured Q/K (MVTrack4Gen) and the
refined features (Track4Gen), and return the weighted losses."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mvtrack.data.pairs import PAIR_KINDS, TrackPairs, sample_pairs

from .capture import QKCapture
from .head import TrackHead
from .losses import corr_loss, refiner_loss, track_loss
from .tokens import TokenGrid, frame_logits, sample_tokens, soft_argmax_uv, soft_labels


@dataclass
class TrackingConfig:
    """Track supervision of a training run; all off by default (the camera-only baseline)."""

    layers: list = field(default_factory=list)  # MVTrack4Gen: supervised self-attention layers (block indices)
    corr_weight: float = 0.01  # L_corr
    track_weight: float = 0.01  # L_track (Huber + BCE of the head)
    pairs: int = 64  # sampled correspondences per clip
    kinds: list = field(default_factory=lambda: list(PAIR_KINDS))
    head_levels: int = 3
    head_radius: int = 2
    head_iters: int = 3
    refiner_block: int | None = None  # Track4Gen: the block whose hidden states are refined (None: off)
    refiner_weight: float = 8.0
    refiner_radius: float = 2.0  # tokens
    refiner_temperature: float = 0.1

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
        self.head = (TrackHead(len(config.layers), config.head_levels, config.head_radius, config.head_iters)
                     if config.mvtrack4gen and config.track_weight > 0 else None)
        self.capture = QKCapture(model, config.layers) if config.mvtrack4gen else None
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
        pairs = sample_pairs(tracks.cpu(), visible.cpu(), cfg.pairs, tuple(cfg.kinds), generator=generator)
        pairs = TrackPairs(**{k: v.to(tracks.device) for k, v in vars(pairs).items()})
        src_f = grid.frame_index(pairs.src_view, pairs.src_time)
        dst_f = grid.frame_index(pairs.dst_view, pairs.dst_time)
        src_uv, dst_uv = grid.to_grid(pairs.src_xy.float()), grid.to_grid(pairs.dst_xy.float())
        seen = pairs.valid & pairs.dst_visible
        out: dict[str, torch.Tensor] = {}
        if self.capture is not None:
            queries, keys, logits = [], [], []
            for layer in cfg.layers:
                q, k = self.capture.qk(layer)
                queries.append(sample_tokens(q, grid, src_f, src_uv))
                keys.append(k)
                logits.append(frame_logits(queries[-1], k, grid, dst_f))
            if cfg.corr_weight > 0:
                labels = soft_labels(grid, dst_uv)
                out["corr"] = cfg.corr_weight * sum(corr_loss(lg, labels, seen) for lg in logits) / len(logits)
            if self.head is not None:
                init = soft_argmax_uv(torch.stack(logits).mean(0).detach(), grid)
                estimates, vis_logit = self.head(queries, keys, grid, dst_f, init)
                huber, bce = track_loss(estimates, vis_logit, dst_uv, pairs.dst_visible, pairs.valid)
                out["track"] = cfg.track_weight * (huber + bce)
        if cfg.track4gen:
            out["refiner"] = cfg.refiner_weight * refiner_loss(
                model.refined, grid, src_f, src_uv, dst_f, dst_uv, seen, cfg.refiner_radius, cfg.refiner_temperature)
        out["total"] = sum(out.values()) if out else tracks.new_zeros(())
        return out

    def clear(self, model=None) -> None:
        """Drop the captured Q/K and refined features of the last step (and the graph they hold)."""
        if self.capture is not None:
            self.capture.clear()
        if model is not None and getattr(model, "refined", None) is not None:
            model.refined = None
