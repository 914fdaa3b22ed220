"""Track supervision (MVTrack4Gen, Track4Gen): Q/K capture, token geometry, losses, the tracking head, layer
analysis and zero-shot feature tracking."""

from .capture import QKCapture, QKCaptureProcessor
from .head import TrackHead
from .losses import corr_loss, corr_loss_per_head, refiner_loss, track_loss
from .mvtap_head import MultiViewTrackHead
from .supervision import TrackingConfig, TrackSupervision
from .tokens import (
    TokenGrid,
    argmax_uv,
    frame_logits,
    frame_logits_per_head,
    sample_tokens,
    soft_argmax_uv,
    soft_labels,
)

__all__ = [
    "MultiViewTrackHead",
    "QKCapture",
    "QKCaptureProcessor",
    "TokenGrid",
    "TrackHead",
    "TrackSupervision",
    "TrackingConfig",
    "argmax_uv",
    "corr_loss",
    "corr_loss_per_head",
    "frame_logits",
    "frame_logits_per_head",
    "refiner_loss",
    "sample_tokens",
    "soft_argmax_uv",
    "soft_labels",
    "track_loss",
]
