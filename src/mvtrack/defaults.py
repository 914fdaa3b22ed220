"""Defaults that the library and the command line share: each is defined here once, and the CLI's option defaults
and help strings read it."""

from __future__ import annotations

from pathlib import Path

# Euler steps of the flow ODE when sampling (generate, demo, bench): every score in docs/ was measured at 25, and
# sampling time is linear in steps (diffusers' WanPipeline defaults to 50 for the real Wan2.1)
SAMPLING_STEPS = 25
# horizontal field of view (degrees) of a source that comes without a camera file
FOV_DEGREES = 55.0

# Prompts of a model with a text encoder: the caption of clips that carry none (every synthetic engine clip), used
# by training (text.default_caption) and by `mvtrack encode`, and the tokens per prompt (Wan2.1's)
CAPTION = "a synthetic 3D scene of textured objects moving over a textured ground"
TEXT_TOKENS = 512
# how `mvtrack encode` stores latents and embeddings
LATENT_DTYPES = ("float16", "float32")

# The embedded default, weights/mvtrack-S, lives in the source tree (32 MiB): a checkout or an editable install
# (`make demo`, `pip install -e .`) has it; a wheel does not carry it, so there the model is a required --model.
SOURCE_TREE_MODEL = Path(__file__).resolve().parents[2] / "weights" / "mvtrack-S"


def default_model() -> str:
    """The directory of the embedded default model, or a ``FileNotFoundError`` saying to pass ``--model``."""
    if (SOURCE_TREE_MODEL / "config.json").is_file():
        return str(SOURCE_TREE_MODEL)
    raise FileNotFoundError(
        f"no default model in this install (the embedded weights/mvtrack-S ships with the source tree, not with the "
        f"package; looked in {SOURCE_TREE_MODEL}): pass --model with a model directory (e.g. an mvtrack export or "
        "a Wan2.1 root) or a preset (tiny, S, B)")
