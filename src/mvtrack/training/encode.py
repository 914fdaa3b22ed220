"""``mvtrack encode``: a model's VAE latents (and text embeddings) of every clip of a set of shards, written once as
latent shards that training reads without running the VAE or the text encoder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from mvtrack.data import ReadStats, ShardWriter, iter_shard, list_shards
from mvtrack.defaults import CAPTION, LATENT_DTYPES
from mvtrack.data.latents import LatentClip, codec_fingerprint
from mvtrack.devices import resolve_device
from mvtrack.models.pretrained import load_vae_codec
from mvtrack.models.text import MAX_LENGTH, load_text_encoder
from mvtrack.outputs import check_output_dir

DTYPES = {name: getattr(torch, name) for name in LATENT_DTYPES}
# the caption of clips that carry none: the trainer's default (TextConfig.default_caption)
DEFAULT_CAPTION = CAPTION


@dataclass
class EncodeStats:
    clips: int = 0
    shards: int = 0
    skipped: int = 0
    text: bool = False


def encode_clip_latents(clip, codec, text=None, default_caption: str = DEFAULT_CAPTION, dtype=torch.float16,
                        depth: bool = False, device="cpu") -> LatentClip:
    """The ``LatentClip`` of one unbatched ``MultiViewClip``: its latents (``codec.encode``, ``dtype`` on disk), its
    caption's embeddings and the empty prompt's (when ``text`` is a ``TextEncoder``), its cameras and tracks, and its
    depth when ``depth``."""
    latents = codec.encode(clip.video[None].to(device))[0].to(dtype).cpu()  # (V, F, C, h, w)
    meta = dict(clip.meta) if isinstance(clip.meta, dict) else {}
    caption = meta.get("caption") if isinstance(meta.get("caption"), str) else default_caption
    embeds = {}
    if text is not None:
        embeds = {"text": text.token_embeds(caption).to(dtype), "text_empty": text.token_embeds("").to(dtype)}
        meta["caption"] = caption
    meta.update(size=list(clip.size), latents=codec_fingerprint(codec))
    return LatentClip(latents=latents, w2c=clip.w2c, K=clip.K, tracks=clip.tracks, visible=clip.visible,
                      depth=clip.depth.half() if depth and clip.depth is not None else None, tracks3d=clip.tracks3d,
                      meta=meta, **embeds)


def encode_shards(model: str | Path, source, out_dir: str | Path, clips_per_shard: int = 64, dtype: str = "float16",
                  text: bool = True, default_caption: str = DEFAULT_CAPTION, depth: bool = False,
                  max_length: int = MAX_LENGTH, device: str = "auto", progress=None) -> EncodeStats:
    """Encode every clip of the shards at ``source`` with the VAE (and UMT5) of the Wan root ``model`` into latent
    shards under ``out_dir``.

    Args:
        dtype: how latents and embeddings are stored: float16 (half the bytes; normalised latents lose ~1e-3) or
            float32.
        text: also store the captions' embeddings (needs the root's ``text_encoder/``; a clip's ``meta["caption"]``,
            else ``default_caption``) and the empty prompt's.
        depth: keep the clips' depth (float16; Track2View's ``source_depth`` tracks need it).
        progress: called with the number of clips written after each one.
    """
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected one of {sorted(DTYPES)}, got {dtype!r}")
    device = resolve_device(device)  # before anything is read: cuda without CUDA is an error naming --device
    check_output_dir(out_dir)
    codec = load_vae_codec(model)
    codec.vae.to(device)
    encoder = None
    if text:
        encoder = load_text_encoder(model, torch.bfloat16 if device.type == "cuda" else torch.float32, max_length)
        if encoder is None:
            raise ValueError(f"encode: model {model} has no text_encoder/ and tokenizer/ to embed captions with "
                             "(pass --no-text to store latents only)")
        encoder.to(device)
    stats, read = EncodeStats(text=encoder is not None), ReadStats()
    with ShardWriter(out_dir, clips_per_shard) as writer:
        for path in list_shards(source):
            for clip in iter_shard(path, read):
                if isinstance(clip, LatentClip):
                    raise ValueError(f"encode: {path} already holds latents")
                codec.check_frames(clip.num_frames)
                writer.write(encode_clip_latents(clip, codec, encoder, default_caption, DTYPES[dtype], depth, device))
                stats.clips += 1
                if progress is not None:
                    progress(stats.clips)
    stats.shards, stats.skipped = len(writer.written), read.skipped_samples
    if stats.clips == 0:
        raise ValueError(f"encode: the shards at {source} hold no readable clips")
    return stats
