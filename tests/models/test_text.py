import shutil

import pytest
import torch

from mvtrack.models.text import TextEncoder, clean_prompt, has_text_encoder, load_text_encoder


def test_prompts_are_embedded_as_wan_pipeline_embeds_them(wan21_root):
    """Same tokens, same encoder, rows past each prompt's tokens zero: diffusers' WanPipeline gives these
    embeddings for the same directory (to float32 precision: the BLAS path depends on the weights' alignment)."""
    from diffusers import WanPipeline

    text = load_text_encoder(wan21_root, torch.float32, max_length=24)
    pipe = WanPipeline.from_pretrained(wan21_root, torch_dtype=torch.float32)
    prompts = ["a red cube  moves over a textured ground", "a cat &amp; a dog"]
    ours = text.encode(prompts)
    theirs = pipe._get_t5_prompt_embeds(prompts, max_sequence_length=24, device="cpu", dtype=torch.float32)
    assert ours.shape == (2, 24, 16)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    n = len(pipe.tokenizer(clean_prompt(prompts[1])).input_ids)  # "a cat & a dog" and </s>
    assert 2 < n < 24 and ours[1, n:].abs().sum() == 0 and ours[1, :n].abs().sum(-1).gt(0).all()


def test_each_prompt_is_encoded_once_and_the_cache_is_bounded(wan21_root):
    text = load_text_encoder(wan21_root, torch.float32, max_length=16)
    text.cache_size = 2
    calls = []
    forward = text.encoder.forward
    text.encoder.forward = lambda ids, mask: calls.append(ids.shape[0]) or forward(ids, mask)
    a = text.encode(["a cat", "a dog", "a cat"])
    assert calls == [2]  # the two distinct prompts, in one batch
    b = text.encode("a cat")
    assert calls == [2] and torch.equal(b[0], a[0]) and torch.equal(a[0], a[2])
    text.encode(["a red cube"])  # a third prompt evicts the least recently used ("a dog")
    assert list(text._cache) == ["a cat", "a red cube"]
    text.encode("a dog")
    assert calls == [2, 1, 1]
    with pytest.raises(ValueError, match="prompt: expected a string"):
        text.encode([None])


def test_text_free_roots_and_half_layouts(wan21_root, tmp_path, wan_root):
    root, _ = wan_root
    assert not has_text_encoder(root) and load_text_encoder(root) is None  # mvtrack's text-free latent models
    half = tmp_path / "half"
    shutil.copytree(wan21_root / "tokenizer", half / "tokenizer")
    with pytest.raises(ValueError, match="has tokenizer/ but no text_encoder/"):
        load_text_encoder(half)
    (half / "text_encoder").mkdir()
    with pytest.raises(ValueError, match="text_encoder: not a UMT5 encoder"):
        load_text_encoder(half)
    assert isinstance(load_text_encoder(wan21_root), TextEncoder)
    assert load_text_encoder(wan21_root).encoder.dtype == torch.bfloat16  # WanPipeline runs UMT5 in bf16


def test_clean_prompt():
    assert clean_prompt("  a\\tcat\\n\\n on &amp;lt;mat&amp;gt; ".replace("\\t", "\t").replace("\\n", "\n")) == "a cat on <mat>"
