"""Track supervision (MVTrack4Gen, Track4Gen): Q/K capture, token geometry, losses, the tracking head, layer
analysis and zero-shot feature tracking."""

from .capture import QKCapture, QKCaptureProcessor
from .head import TrackHead
from .losses import corr_loss, refiner_loss, track_loss
from .supervision import TrackingConfig, TrackSupervision
from .tokens import TokenGrid, argmax_uv, frame_logits, sample_tokens, soft_argmax_uv, soft_labels

__all__ = [
    "QKCapture", "QKCaptureProcessor", "TrackHead", "corr_loss", "refiner_loss", "track_loss", "TrackingConfig",
    "TrackSupervision", "TokenGrid", "argmax_uv", "frame_logits", "sample_tokens", "soft_argmax_uv", "soft_labels",
]
