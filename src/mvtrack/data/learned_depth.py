"""A monocular depth model from a local directory, aligned in scale to a source's stereo depth.

``LearnedDepth`` loads a depth-estimation model through ``transformers`` (``AutoModelForDepthEstimation`` and its
image processor: Depth Anything V2, DPT / MiDaS layouts) from a directory on disk; nothing is downloaded. Relative
models predict inverse depth up to an unknown scale and shift (affine-invariant disparity); metric ones predict
depth, which is inverted. ``align_inverse_depth`` fits the scale and shift of every frame to the stereo depth's
confident pixels, so the learned depth fills what stereo cannot see (textureless walls, little parallax) in the
stereo's, i.e. the cameras', units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

MIN_POINTS = 64  # confident stereo pixels a frame needs for its own fit (else the whole video's fit is used)


class LearnedDepth:
    """A ``transformers`` depth-estimation model in a local directory (``config.json``, weights, and
    ``preprocessor_config.json``).

    Args:
        path: the directory.
        device: where to run it.
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu"):
        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--depth-model {path}: expected a transformers depth-estimation directory with "
                                    "config.json (e.g. Depth Anything V2 saved with save_pretrained); none there")
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        try:
            self.processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForDepthEstimation.from_pretrained(path, local_files_only=True).to(device).eval()
        except (OSError, ValueError, KeyError) as e:
            raise ValueError(f"--depth-model {path}: cannot be loaded as a depth-estimation model "
                             f"({type(e).__name__}: {str(e).splitlines()[0]})") from None
        self.metric = getattr(self.model.config, "depth_estimation_type", "relative") == "metric"
        self.device = torch.device(device)

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        """Relative inverse depth (larger is nearer, up to scale and shift) of every frame.

        Args:
            frames: (T, 3, H, W) in [0, 1].

        Returns:
            (T, H, W) float32, resized (bilinear) to the frames' size.
        """
        T, _, H, W = frames.shape
        images = [(f.permute(1, 2, 0).clamp(0, 1).cpu().numpy() * 255).round().astype(np.uint8) for f in frames]
        inputs = self.processor(images=images, return_tensors="pt").to(self.device)
        out = self.model(**inputs).predicted_depth.float()  # (T, h, w)
        out = F.interpolate(out[:, None], size=(H, W), mode="bilinear", align_corners=False)[:, 0].cpu()
        return 1 / out.clamp_min(1e-6) if self.metric else out


def _fit(x: torch.Tensor, y: torch.Tensor, rounds: int = 3, keep: float = 0.8) -> tuple[float, float]:
    """Least-squares (a, b) with a x + b ~ y, refitted on the ``keep`` share of smallest residuals ``rounds`` times."""
    use = torch.ones_like(x, dtype=torch.bool)
    a, b = 1.0, 0.0
    for _ in range(rounds):
        X = torch.stack([x[use], torch.ones_like(x[use])], -1).double()
        sol = torch.linalg.lstsq(X, y[use].double()[:, None]).solution[:, 0]
        a, b = float(sol[0]), float(sol[1])
        residual = (a * x + b - y).abs()
        use = residual <= residual.quantile(keep)
    return a, b


def align_inverse_depth(relative: torch.Tensor, depth: torch.Tensor, valid: torch.Tensor) -> torch.Tensor | None:
    """A learned relative inverse depth in the units of a reference depth, frame by frame.

    Args:
        relative: (T, H, W) inverse depth up to scale and shift; depth: (T, H, W) reference z-depth, trusted where
            ``valid`` (T, H, W).

    Returns:
        (T, H, W) z-depth ``1 / (a_t relative + b_t)``, with (a_t, b_t) fitted (trimmed least squares) to the
        reference's inverse depth on its valid pixels (frames with too few of them use the whole video's fit);
        where the fitted inverse depth is not positive, the reference's largest depth. None when the reference has
        fewer than ``MIN_POINTS`` valid pixels in all.
    """
    if int(valid.sum()) < MIN_POINTS:
        return None
    inverse = 1 / depth.clamp_min(1e-12)
    shared = _fit(relative[valid], inverse[valid])
    far = float(depth[valid].max())
    out = torch.empty_like(depth)
    for t in range(depth.shape[0]):
        a, b = _fit(relative[t][valid[t]], inverse[t][valid[t]]) if int(valid[t].sum()) >= MIN_POINTS else shared
        if a <= 0:  # a frame whose fit inverts near and far is not trusted
            a, b = shared
        fitted = a * relative[t] + b
        out[t] = torch.where(fitted > 1 / (10 * far), 1 / fitted.clamp_min(1e-12), torch.full_like(fitted, far))
    return out
