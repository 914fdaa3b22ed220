"""GPU memory of fine-tuning Wan2.1-T2V-1.3B with each recipe (configs/wan2.1-1.3b), per GPU, one clip per step.

ESTIMATED, NOT MEASURED (no GPU has been lent to this project yet). What is exact and what is a model:
- parameters are counted exactly: each recipe's model is built on the meta device from Wan2.1-T2V-1.3B's published
  config, with the recipe's added modules, LoRA adapters and trainable set (``training.model``); UMT5-XXL and the
  Wan VAE likewise from their published configs;
- memory per parameter follows the trainer: frozen weights bf16 (Wan's float32 modules float32), each trained
  parameter float32 weight + gradient + AdamW's two moments + EMA = 20 bytes (the track head has no EMA: 16);
- activations are an analytical count (below) for gradient checkpointing in bf16 autocast with flash attention
  (O(tokens) memory), not a trace; allocator fragmentation and CUDA context (~0.5-1 GiB) are not included.
``scripts/cuda_smoke.py`` measures the real peak (``torch.cuda.max_memory_allocated``) of two training steps of each
recipe on a GPU; run it and replace these figures.

    python benchmarks/wan_finetune_memory.py                        # docs/models.md's table
    python benchmarks/wan_finetune_memory.py --frames 49 --size 320x576
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mvtrack.models import MultiViewTransformer
from mvtrack.models.lora import add_lora
from mvtrack.models.pretrained import keeps_fp32
from mvtrack.training import TrainConfig
from mvtrack.training.model import trainable_names, trainable_preset

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "wan2.1-1.3b"
METHODS = ("camera_only", "mvtrack4gen", "track2view", "cvd", "track4gen")
# Wan2.1-T2V-1.3B's transformer/config.json (diffusers layout)
WAN21_1_3B = dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                  out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                  qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
# google/umt5-xxl's encoder, as Wan2.1's text_encoder/config.json
UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                feed_forward_proj="gated-gelu")
# Bytes kept per token for the backward of ONE Wan block while it is recomputed (bf16 autocast, float32 norms):
# per token and channel of the width D: norm1 input and output in float32 (4 + 4), the modulated q/k/v input (2),
# q and k before and after their RMS norms and RoPE (2 x 2 + 2 x 2 + 2 x 2), v (2), flash attention's output (2),
# the out projection's input (2), the gated residual (2 + 4), norm2 in and out (4 + 4), the cross-attention query
# input and output (2 + 2), its out projection's input (2), norm3 in and out with modulation (4 + 4 + 2), the FFN's
# input (2) and the gated residual (2 + 4): 64 bytes x D; per channel of the FFN width: GELU's input and output
# (2 + 2): 4 bytes x ffn_dim.
BLOCK_BYTES_PER_D, BLOCK_BYTES_PER_FFN = 64, 4


def gib(n: float) -> float:
    return n / 2**30


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def recipe_model(cfg: TrainConfig):
    """The recipe's model on the meta device (no memory), and its trainable parameter names."""
    preset = trainable_preset(cfg)
    with torch.device("meta"):
        model = MultiViewTransformer(dict(WAN21_1_3B))
        if cfg.tracking.refiner_block is not None:
            model.add_refiner(cfg.tracking.refiner_block, cfg.tracking.refiner_style)
        if cfg.track2view.conditioner:
            model.add_track_conditioner(**cfg.track2view.conditioner)
        if cfg.cvd.epipolar:
            model.add_epipolar(**cfg.cvd.epipolar)
        if preset in ("lora", "track2view"):
            add_lora(model, cfg.lora.rank, cfg.lora.alpha, cfg.lora.dropout, cfg.lora.targets)
    return model, trainable_names(model, preset, cfg.also_train, text=True)


def head_parameters(cfg: TrainConfig) -> int:
    if not cfg.tracking.mvtrack4gen:
        return 0
    from mvtrack.tracking.head import TrackHead
    from mvtrack.tracking.mvtap_head import MultiViewTrackHead

    t = cfg.tracking
    with torch.device("meta"):
        head = (TrackHead(len(t.layers), t.head_levels, t.head_radius, t.head_iters) if t.head == "pair" else
                MultiViewTrackHead(len(t.layers), t.head_levels, t.head_radius, t.head_iters, t.head_dim, t.head_depth,
                                   t.head_query_radius))
    return count(head)


def estimate(cfg: TrainConfig, views: int, frames: int, height: int, width: int, name: str | None = None) -> dict:
    model, trained = recipe_model(cfg)
    trained = set(trained)
    D = WAN21_1_3B["num_attention_heads"] * WAN21_1_3B["attention_head_dim"]
    Fd, layers = WAN21_1_3B["ffn_dim"], WAN21_1_3B["num_layers"]
    latent_frames = 1 + (frames - 1) // 4
    grid_h, grid_w = height // 16, width // 16  # 8x VAE, 2x2 patches
    L = views * latent_frames * grid_h * grid_w  # tokens
    n_frozen_fp32 = sum(p.numel() for n, p in model.named_parameters() if n not in trained and keeps_fp32(model, n))
    n_frozen = sum(p.numel() for n, p in model.named_parameters() if n not in trained)
    n_trained = sum(p.numel() for n, p in model.named_parameters() if n in trained)
    n_head = head_parameters(cfg)
    frozen = (n_frozen - n_frozen_fp32) * 2 + n_frozen_fp32 * 4
    state = n_trained * 20 + n_head * 16
    from diffusers import AutoencoderKLWan
    from transformers import UMT5Config, UMT5EncoderModel

    with torch.device("meta"):
        n_text = count(UMT5EncoderModel(UMT5Config(**UMT5_XXL)))
        n_vae = count(AutoencoderKLWan())
    text = n_text * 2 if cfg.text.device == "auto" else 0
    vae = n_vae * 4
    # activations (see the module docstring); every term is bytes
    checkpoints = layers * L * D * 2  # each block's input, kept for its recompute
    conditioning = L * 6 * D * 4 + L * D * 4 + L * D * 2  # per-token modulation (float32), temb, camera embedding
    block = L * (BLOCK_BYTES_PER_D * D + BLOCK_BYTES_PER_FFN * Fd)  # one block recomputed in the backward
    grads = 3 * L * D * 4  # the activation gradient flowing back, in float32
    extra = 0
    t = cfg.tracking
    if t.mvtrack4gen:  # the supervised layers' captured Q and K, kept for L_corr / L_track
        extra += len(t.layers) * 2 * L * D * 2
    if t.refiner_block is not None:  # Track4Gen's refiner is not checkpointed: conv out bf16, BN in/out float32
        extra += (7 if t.refiner_style == "paper" else 3) * L * D * 10 + L * D * 2
    if cfg.track2view.conditioner:  # per-track transformer over the tracks' frames (width W, `layers` layers)
        c = cfg.track2view.conditioner
        tracks = min(cfg.data.num_tracks, c.get("max_token_tracks") or cfg.data.num_tracks)
        extra += c.get("layers", 2) * 16 * tracks * latent_frames * c.get("width", 128) * 4
    if cfg.cvd.epipolar:  # the per-frame pair mask (bool) and its distances (float32) while it is built
        n = grid_h * grid_w
        extra += latent_frames * views * views * n * n * (1 + 4)
    dit = checkpoints + conditioning + block + grads + extra
    # the VAE encodes the clip before the DiT's forward: ~8 live float32 maps of its first stage (96 channels) over a
    # causal chunk of 4 frames at full resolution
    vae_encode = 8 * 96 * 4 * height * width * 4
    peak_activations = max(dit, vae_encode)
    return {
        "method": name or cfg.output_dir.rsplit("/", 1)[-1], "trainable": trainable_preset(cfg), "tokens": L,
        "params": count(model), "trained": n_trained + n_head, "frozen_gib": gib(frozen), "state_gib": gib(state),
        "text_gib": gib(text), "vae_gib": gib(vae), "activations_gib": gib(peak_activations),
        "total_gib": gib(frozen + state + text + vae + peak_activations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--views", type=int, default=2)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--size", default="480x832", help="HxW")
    parser.add_argument("--full", action="store_true", help="also the camera-only recipe with trainable: all")
    args = parser.parse_args()
    height, width = (int(x) for x in args.size.split("x"))
    rows = [estimate(TrainConfig.from_yaml(RECIPES / f"{m}.yaml"), args.views, args.frames, height, width)
            for m in METHODS]
    if args.full:
        full = TrainConfig.from_yaml(RECIPES / "camera_only.yaml", ["trainable=all"])
        rows.append(estimate(full, args.views, args.frames, height, width, "camera_only, every parameter"))
    print(f"ESTIMATED (analytical; not measured): Wan2.1-T2V-1.3B, {args.views} views x {args.frames} frames x "
          f"{height}x{width} ({rows[0]['tokens']:,} tokens), batch 1 per GPU, bf16 autocast, gradient checkpointing\n")
    print("| recipe | trainable | trained params | frozen weights | trained state (w+g+AdamW+EMA) | UMT5 (bf16) | VAE "
          "| activations (peak) | total per GPU |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['trainable']} | {r['trained'] / 1e6:.0f} M of {r['params'] / 1e9:.2f} B | "
              f"{r['frozen_gib']:.1f} GiB | {r['state_gib']:.1f} GiB | {r['text_gib']:.1f} GiB | {r['vae_gib']:.1f} GiB "
              f"| {r['activations_gib']:.1f} GiB | **{r['total_gib']:.0f} GiB** |")


if __name__ == "__main__":
    main()
