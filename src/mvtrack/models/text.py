"""Wan2.1's text conditioning: the UMT5 encoder and its tokenizer, read from a Wan directory (``transformers``).

Prompts are embedded as diffusers' ``WanPipeline`` embeds them (``_get_t5_prompt_embeds``): cleaned, tokenised to
``max_length`` tokens, encoded, and every position past the prompt's own tokens set to zero. Each prompt is
encoded once and kept (trimmed to its tokens, on the CPU) in a bounded cache, so training on a fixed set of
captions, or sampling with a fixed negative prompt, runs the encoder once per distinct prompt.
"""

from __future__ import annotations

import html
import re
from collections import OrderedDict
from pathlib import Path

import torch

from mvtrack.defaults import TEXT_TOKENS

# Wan2.1 was trained with 512 text tokens (diffusers' WanPipeline default)
MAX_LENGTH = TEXT_TOKENS


def clean_prompt(text: str) -> str:
    """WanPipeline's ``prompt_clean`` without ftfy: HTML entities decoded, runs of whitespace made one space."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip()


class TextEncoder:
    """A tokenizer and a UMT5 encoder that turn prompts into Wan's ``encoder_hidden_states``.

    Args:
        tokenizer: a ``transformers`` tokenizer (Wan2.1: ``google/umt5-xxl``'s).
        encoder: a ``transformers.UMT5EncoderModel`` (any model whose output has ``last_hidden_state``).
        max_length: tokens per prompt (longer prompts are truncated, shorter ones padded with zero embeddings).
        cache_size: prompts kept in the cache (least recently used dropped first).
    """

    def __init__(self, tokenizer, encoder, max_length: int = MAX_LENGTH, cache_size: int = 1024):
        if max_length < 1:
            raise ValueError(f"text max_length: expected >= 1, got {max_length}")
        self.tokenizer, self.encoder = tokenizer, encoder.eval().requires_grad_(False)
        self.max_length, self.cache_size = int(max_length), int(cache_size)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()

    @property
    def dim(self) -> int:
        return int(self.encoder.config.d_model)

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def to(self, device) -> TextEncoder:
        self.encoder.to(device)
        return self

    @torch.no_grad()
    def _encode(self, prompts: list[str]) -> list[torch.Tensor]:
        tokens = self.tokenizer(prompts, padding="max_length", max_length=self.max_length, truncation=True,
                                add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
        ids, mask = tokens.input_ids.to(self.device), tokens.attention_mask.to(self.device)
        hidden = self.encoder(ids, mask).last_hidden_state  # (B, S, D)
        lengths = mask.gt(0).sum(dim=1).tolist()
        return [h[:n].cpu() for h, n in zip(hidden, lengths)]

    def token_embeds(self, prompt: str) -> torch.Tensor:
        """(n, D) on the CPU: the embeddings of ``prompt``'s own n tokens (``encode`` pads them with zero rows)."""
        self.encode([prompt])
        return self._cache[clean_prompt(prompt)].clone()

    def encode(self, prompts: str | list[str], device=None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """Embed ``prompts`` (cached per prompt).

        Returns:
            (B, max_length, D) in ``dtype`` (default: the encoder's) on ``device`` (default: the encoder's); rows past
            each prompt's tokens are zero, as in ``WanPipeline``.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt: expected a string or a list of strings, got {prompts!r}")
        cleaned = [clean_prompt(p) for p in prompts]
        new = [p for p in dict.fromkeys(cleaned) if p not in self._cache]
        if new:
            for p, h in zip(new, self._encode(new)):
                self._cache[p] = h
        out = torch.zeros(len(cleaned), self.max_length, self.dim, dtype=dtype or self.encoder.dtype)
        for i, p in enumerate(cleaned):
            self._cache.move_to_end(p)
            out[i, : self._cache[p].shape[0]] = self._cache[p].to(out.dtype)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out.to(device if device is not None else self.device)


def has_text_encoder(root: str | Path) -> bool:
    """Whether a model root holds Wan's ``text_encoder/`` and ``tokenizer/``; ``ValueError`` if only one is there."""
    root = Path(root)
    found = [(root / d).is_dir() for d in ("text_encoder", "tokenizer")]
    if any(found) and not all(found):
        missing = "tokenizer" if found[0] else "text_encoder"
        raise ValueError(f"model {root}: has {'text_encoder' if found[0] else 'tokenizer'}/ but no {missing}/ "
                         "(a Wan2.1 root has both)")
    return all(found)


def load_text_encoder(root: str | Path, torch_dtype: torch.dtype | None = None,
                      max_length: int = MAX_LENGTH) -> TextEncoder | None:
    """The ``TextEncoder`` of a Wan2.1 root (``text_encoder/`` + ``tokenizer/``, local files only), or None when the
    root has neither (mvtrack's text-free models: they condition on a learned null context).

    ``torch_dtype`` None loads bfloat16, as ``WanPipeline`` runs UMT5 (its ``wo`` layers stay float32).
    """
    root = Path(root)
    if not has_text_encoder(root):
        return None
    try:
        from transformers import AutoTokenizer, UMT5EncoderModel
    except ImportError as e:
        raise ImportError(f"model {root}: its text encoder needs `pip install transformers` ({e})") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"model {root / 'tokenizer'}: not a tokenizer transformers can read ({_first_line(e)})") from None
    from transformers.utils import logging

    bar = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # one bar per load would interleave with the commands' own progress
    try:
        encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", torch_dtype=torch_dtype or torch.bfloat16,
                                                   local_files_only=True)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"model {root / 'text_encoder'}: not a UMT5 encoder transformers can read "
                         f"({_first_line(e)})") from None
    finally:
        if bar:
            logging.enable_progress_bar()
    return TextEncoder(tokenizer, encoder, max_length)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]
