"""Model sizes. ``tiny`` runs forward+backward on a CPU in well under a second (tests); ``S`` is the
embedded default (pixel space, shipped in ``weights/``); ``B`` is the GPU research size."""

from __future__ import annotations

from .transformer import MultiViewTransformer

# Every preset is pixel space with 3 input channels; the real Wan2.1 path is loaded with ``load_model(path)``.
PRESETS: dict[str, dict] = {
    "tiny": dict(  # 46k parameters
        patch_size=(1, 4, 4),
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=3,
        out_channels=3,
        text_dim=16,
        freq_dim=32,
        ffn_dim=64,
        num_layers=2,
        rope_max_seq_len=256,
    ),
    "S": dict(  # ~13M parameters; 8x8 pixel patches keep a 64x64 two-view clip at 1k tokens for CPU training
        patch_size=(1, 8, 8),
        num_attention_heads=5,
        attention_head_dim=64,
        in_channels=3,
        out_channels=3,
        text_dim=64,
        freq_dim=128,
        ffn_dim=1280,
        num_layers=8,
        rope_max_seq_len=256,
    ),
    "B": dict(  # ~135M parameters
        patch_size=(1, 8, 8),
        num_attention_heads=12,
        attention_head_dim=64,
        in_channels=3,
        out_channels=3,
        text_dim=256,
        freq_dim=256,
        ffn_dim=3072,
        num_layers=12,
        rope_max_seq_len=1024,
    ),
}


def build_model(name: str, **kwargs) -> MultiViewTransformer:
    """A freshly initialised model of a preset size (camera branch at zero); ``kwargs`` go to the constructor
    (e.g. ``prediction_type``)."""
    if name not in PRESETS:
        raise ValueError(f"model preset: expected one of {sorted(PRESETS)}, got {name!r}")
    return MultiViewTransformer(dict(PRESETS[name]), **kwargs)
