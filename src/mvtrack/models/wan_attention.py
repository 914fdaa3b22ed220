"""Wan self-attention pieces for attention processors that compute their own logits (Q/K capture, epipolar masks)."""

from __future__ import annotations

import torch


def apply_wan_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs of ``x (B, L, heads, head_dim)`` by Wan's ``(cos, sin)``, in diffusers' arithmetic
    order (bit-identical to ``WanAttnProcessor``)."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * cos - x2 * sin
    out[..., 1::2] = x1 * sin + x2 * cos
    return out.type_as(x)


def self_attention_qkv(attn, hidden_states: torch.Tensor, encoder_hidden_states, rotary_emb, name: str):
    """Query, key and value ``(B, L, heads, head_dim)`` of a Wan self-attention layer (``attn1``), after its QK norms
    and rotary embedding, exactly as ``WanAttnProcessor`` computes them; ``name`` is the calling processor, named
    in the error for a cross-attention layer."""
    if encoder_hidden_states is not None or attn.add_k_proj is not None:
        raise ValueError(f"{name}: only for self-attention layers (attn1 of a Wan block)")
    if attn.fused_projections:
        query, key, value = attn.to_qkv(hidden_states).chunk(3, dim=-1)
    else:
        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
    query, key = attn.norm_q(query), attn.norm_k(key)
    query, key, value = (x.unflatten(2, (attn.heads, -1)) for x in (query, key, value))
    if rotary_emb is not None:
        query, key = apply_wan_rotary(query, *rotary_emb), apply_wan_rotary(key, *rotary_emb)
    return query, key, value
