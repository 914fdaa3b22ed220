"""Capture the queries and keys of chosen self-attention layers of the backbone, for track supervision (MVTrack4Gen)
and layer analysis, without changing what the layers compute."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from diffusers.models.attention_dispatch import dispatch_attention_fn
from diffusers.models.transformers.transformer_wan import WanAttnProcessor

from mvtrack.models.wan_attention import self_attention_qkv


class QKCaptureProcessor(WanAttnProcessor):
    """Wan self-attention that also keeps its last queries and keys, after the QK norms and the rotary embedding
    (what the attention logits are made of): ``query``, ``key`` (B, L, heads, head_dim), still in the autograd graph
    so that losses on them train the layer's projections."""

    def __init__(self):
        super().__init__()
        self.query: torch.Tensor | None = None
        self.key: torch.Tensor | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        query, key, value = self_attention_qkv(attn, hidden_states, encoder_hidden_states, rotary_emb,
                                               "QKCaptureProcessor")
        self.query, self.key = query, key
        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False,
                                    backend=self._attention_backend, parallel_config=self._parallel_config)
        out = out.flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


class QKCapture:
    """Install :class:`QKCaptureProcessor` on the self-attention of ``layers`` of a MultiViewTransformer (or a
    WanTransformer3DModel); usable as a context manager, or kept for training and removed with ``remove()``.

    >>> with QKCapture(model, [4, 5]) as capture:
    ...     model(sample, timestep, camera)
    ...     q, k = capture.qk(4)  # (B, L, heads, head_dim) each
    """

    def __init__(self, model, layers: Sequence[int]):
        wan = getattr(model, "wan", model)
        n = len(wan.blocks)
        self.layers = [int(i) for i in layers]
        bad = [i for i in self.layers if not 0 <= i < n]
        if bad or not self.layers:
            raise ValueError(f"layers: expected indices in [0, {n}) of the backbone's blocks, got {list(layers)}")
        self._attns = {i: wan.blocks[i].attn1 for i in self.layers}
        self._original = {i: a.processor for i, a in self._attns.items()}
        self.processors = {i: QKCaptureProcessor() for i in self.layers}
        for i, a in self._attns.items():
            a.set_processor(self.processors[i])

    def qk(self, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.processors[layer]
        if p.query is None:
            raise RuntimeError(f"layer {layer}: nothing captured yet (run the model first)")
        return p.query, p.key

    def clear(self) -> None:
        """Drop the captured tensors (and the graph they hold)."""
        for p in self.processors.values():
            p.query = p.key = None

    def remove(self) -> None:
        """Restore the original processors."""
        self.clear()
        for i, a in self._attns.items():
            a.set_processor(self._original[i])

    def __enter__(self) -> QKCapture:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()
