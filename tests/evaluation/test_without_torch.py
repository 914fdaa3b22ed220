"""``mvtrack.evaluation`` scores any system's videos where torch is not installed (docs/architecture.md): imported
and used in a fresh interpreter in which ``import torch`` fails."""

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = r"""
import builtins, sys
real_import = builtins.__import__
def no_torch(name, *args, **kwargs):
    if name == "torch" or name.startswith("torch."):
        raise ImportError("torch is hidden in this test")
    return real_import(name, *args, **kwargs)
builtins.__import__ = no_torch
sys.modules["torch"] = None

import numpy as np
import mvtrack.evaluation as ev

rng = np.random.default_rng(0)
video = rng.random((4, 3, 16, 16))
assert ev.psnr(video, video).min() == float("inf") or ev.psnr(video, video).min() > 100
w2c = np.tile(np.eye(4), (4, 1, 1))
w2c_b = w2c.copy()
w2c_b[:, 0, 3] = -0.2
K = np.tile(np.array([[20.0, 0, 7.5], [0, 20.0, 7.5], [0, 0, 1]]), (4, 1, 1))
depth = np.full((4, 16, 16), 2.0)
assert np.isfinite(ev.warp_psnr(video, video, depth, depth, w2c, K, w2c_b, K))
F = ev.epipolar.fundamental_matrices(w2c, K, w2c_b, K)
assert F.shape == (4, 3, 3) and np.isfinite(F).all()
frames = (rng.random((3, 16, 16, 3)) * 255).astype(np.uint8)
tracks, visible = ev.flow_tracks(frames, np.array([[0, 5.0, 5.0]]))
assert tracks.shape == (3, 1, 2)
assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
print("ok")
"""


def test_evaluation_imports_and_scores_without_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            env={"PYTHONPATH": str(SRC), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
