import math

import pytest
import torch

from mvtrack.geometry import look_at, make_intrinsics


@pytest.fixture
def two_cameras():
    """Two OpenCV cameras looking at the origin from different places, with different intrinsics."""
    eyes = torch.tensor([[4.0, -3.0, 1.5], [3.0, 4.0, 2.5]], dtype=torch.float64)
    c2w = look_at(eyes, torch.zeros(2, 3, dtype=torch.float64))
    w2c = torch.linalg.inv(c2w)
    K = make_intrinsics(torch.tensor([90.0, 110.0]), torch.tensor([92.0, 105.0]),
                        torch.tensor([63.5, 60.2]), torch.tensor([47.5, 50.1])).double()
    return w2c, K


@pytest.fixture
def random_points():
    g = torch.Generator().manual_seed(0)
    return (torch.rand(50, 3, generator=g, dtype=torch.float64) - 0.5) * 2.0


def deg(x):
    return math.radians(x)


@pytest.fixture
def assert_same_model():
    return _assert_same_model


def _assert_same_model(a: torch.nn.Module, b: torch.nn.Module, out_a: torch.Tensor, out_b: torch.Tensor) -> None:
    """A reloaded model equals the saved one: every tensor of the state bit for bit, and outputs to float32 precision.

    Outputs are not compared bit for bit: a model loaded from safetensors keeps its weights as views into the
    file's buffer (8-byte aligned), and BLAS kernels take other code paths, with other summation orders, on
    unaligned data on some processors (AVX2 on AMD EPYC gave 6e-7 differences, AVX-512 on Intel Xeon none).
    """
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    torch.testing.assert_close(out_b, out_a, atol=1e-5, rtol=1e-5)


def make_tiny_vae():
    """A Wan VAE small enough for CPU tests: 4 latent channels, 8x spatial and 4x temporal compression."""
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                            latents_mean=[0.1, -0.2, 0.0, 0.3], latents_std=[1.5, 2.0, 1.0, 0.5]).eval()


@pytest.fixture
def tiny_vae():
    return make_tiny_vae()


@pytest.fixture
def wan_root(tmp_path):
    """A Wan2.1-style diffusers root (transformer/ + vae/) with tiny random weights; returns (path, wan)."""
    from diffusers import WanTransformer3DModel

    from mvtrack.models import PRESETS

    wan = WanTransformer3DModel(**{**PRESETS["tiny"], "in_channels": 4, "out_channels": 4, "patch_size": (1, 2, 2)})
    wan.save_pretrained(tmp_path / "wan" / "transformer")
    make_tiny_vae().save_pretrained(tmp_path / "wan" / "vae")
    return tmp_path / "wan", wan


@pytest.fixture
def train_killed_at():
    """``train_killed_at(trainer, step)``: run ``trainer.train()`` until it is interrupted during ``step``, as a
    kill would (for exact-resume tests)."""

    def run(trainer, step: int) -> None:
        step_fn = trainer.micro_step

        def crash(s, micro):
            if s == step:
                raise KeyboardInterrupt
            return step_fn(s, micro)

        trainer.micro_step = crash
        with pytest.raises(KeyboardInterrupt):
            trainer.train()

    return run


def make_tokenizer():
    """A tiny UMT5-style tokenizer (sentencepiece Unigram with a Metaspace pre-tokenizer and ``</s>`` appended),
    trained here on a few sentences, as a ``T5TokenizerFast``: no download."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    words = ["a red cube moves over a textured ground", "a blue sphere rolls past the camera", "a cat", "a dog",
             "a synthetic scene of textured objects moving over a textured ground", "bright, blurred, static"]
    trainer = trainers.UnigramTrainer(vocab_size=64, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>")
    tok.train_from_iterator(words * 8, trainer)
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", extra_ids=0)


def make_wan21_root(root):
    """A Wan2.1-T2V stand-in in the real diffusers layout, saved by ``WanPipeline.save_pretrained``: a tiny random
    transformer (4 latent channels, 2x2 patches, text_dim 16), the tiny VAE, a tiny random ``UMT5EncoderModel``
    (d_model 16), a locally trained tokenizer and Wan2.1's UniPC flow scheduler (shift 3)."""
    from diffusers import UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
    from transformers import UMT5Config, UMT5EncoderModel

    from mvtrack.models import PRESETS

    tokenizer = make_tokenizer()
    torch.manual_seed(0)
    transformer = WanTransformer3DModel(**{**PRESETS["tiny"], "in_channels": 4, "out_channels": 4,
                                           "patch_size": (1, 2, 2)})
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(tokenizer), d_model=16, d_kv=8, d_ff=32, num_layers=1,
                                          num_heads=2, relative_attention_num_buckets=8, dropout_rate=0.0))
    scheduler = UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0,
                                        num_train_timesteps=1000)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=encoder, transformer=transformer, vae=make_tiny_vae(),
                       scheduler=scheduler)
    pipe.save_pretrained(root)
    return root


@pytest.fixture(scope="session")
def wan21_root(tmp_path_factory):
    """A Wan2.1 root with text encoder, tokenizer and UniPC scheduler (``make_wan21_root``); shared: read only."""
    return make_wan21_root(tmp_path_factory.mktemp("wan21") / "Wan2.1-T2V-tiny")


@pytest.fixture(autouse=True)
def _fresh_accelerator_state():
    """Accelerate keeps one process-wide state: a bf16 trainer would fix every later trainer's precision."""
    yield
    import sys

    if "accelerate.state" in sys.modules:
        sys.modules["accelerate.state"].AcceleratorState._reset_state()
