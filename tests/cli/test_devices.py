"""--device / --dtype of generate, demo and bench, and generate's prompt options."""

import imageio.v3 as iio
import pytest
import torch
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.devices import resolve_device, resolve_dtype

runner = CliRunner()


def test_device_and_dtype_strings_are_checked():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("gpu", "cuda:x", "mps"):
        with pytest.raises(ValueError, match=f"--device {bad}: expected auto, cpu, cuda or cuda:N"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: CUDA is not available on this machine"):
            resolve_device("cuda")
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("float16", torch.device("cpu")) == torch.float16
    with pytest.raises(ValueError, match="--dtype fp8: expected auto, float32, bfloat16, float16"):
        resolve_dtype("fp8", torch.device("cpu"))


@pytest.mark.parametrize("command", ["generate", "demo", "bench"])
def test_each_sampling_command_names_a_bad_device_or_dtype_in_one_line(command, tmp_path):
    args = {"generate": ["generate", "--model", "tiny", "--image", "x.png", "--out", str(tmp_path / "o")],
            "demo": ["demo", "--model", "tiny", "--out", str(tmp_path / "o")],
            "bench": ["bench", "--checkpoint", "tiny", "--out", str(tmp_path / "o")]}[command]
    result = runner.invoke(app, [*args, "--device", "tpu"])
    assert result.exit_code == 2 and "--device tpu: expected auto, cpu, cuda or cuda:N" in result.output
    assert len(result.output.strip().splitlines()) == 1
    result = runner.invoke(app, [*args, "--dtype", "double"])
    assert result.exit_code == 2 and "--dtype double: expected auto, float32" in result.output
    if not torch.cuda.is_available():
        result = runner.invoke(app, [*args, "--device", "cuda"])
        assert result.exit_code == 2 and "CUDA is not available" in result.output


def test_generate_with_prompts_on_a_wan21_root(tmp_path, wan21_root):
    """A Wan2.1 root generates from a prompt with guidance, in bf16 on the CPU; a text-free model refuses one."""
    frame = (torch.rand(32, 32, 3) * 255).byte().numpy()
    iio.imwrite(tmp_path / "first.png", frame)
    args = ["generate", "--image", str(tmp_path / "first.png"), "--frames", "5", "--size", "32", "--steps", "2",
            "--device", "cpu"]
    result = runner.invoke(app, [*args, "--model", str(wan21_root), "--out", str(tmp_path / "o"), "--prompt",
                                 "a red cube", "--negative-prompt", "static", "--guidance-scale", "3", "--dtype",
                                 "bfloat16"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "o" / "grid.mp4").is_file() and (tmp_path / "o" / "view_01.mp4").is_file()
    result = runner.invoke(app, [*args, "--model", "tiny", "--out", str(tmp_path / "p"), "--prompt", "a cat"])
    assert result.exit_code == 2 and "has no text encoder" in result.output
    result = runner.invoke(app, [*args, "--model", "tiny", "--out", str(tmp_path / "q"), "--guidance-scale", "4"])
    assert result.exit_code == 2 and "classifier-free guidance needs a text encoder" in result.output
