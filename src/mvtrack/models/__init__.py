"""Models: the multi-view Wan backbone, its camera conditioning, size presets and local loading."""

from .camera import CameraEncoder, camera_condition
from .codec import PixelCodec, WanVAECodec
from .presets import PRESETS, build_model
from .pretrained import load_model, load_transformer
from .transformer import MultiViewTransformer, MultiViewTransformerOutput

__all__ = [
    "PRESETS",
    "CameraEncoder",
    "MultiViewTransformer",
    "MultiViewTransformerOutput",
    "PixelCodec",
    "WanVAECodec",
    "build_model",
    "camera_condition",
    "load_model",
    "load_transformer",
]
