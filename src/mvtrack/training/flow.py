"""Rectified flow in Wan's convention: x_t = (1 - sigma) x_0 + sigma * noise, the model predicts noise - x_0,
the timestep it sees is sigma * 1000. Observed frames stay clean (sigma 0) and take no loss."""

from __future__ import annotations

import torch

from .config import TASKS


def shifted_sigmas(u: torch.Tensor, shift: float) -> torch.Tensor:
    """Wan / SD3 time shift of uniform samples ``u`` in [0, 1]: shift * u / (1 + (shift - 1) * u)."""
    return shift * u / (1 + (shift - 1) * u)


def sample_observed(
    tasks: dict[str, float], batch: int, views: int, frames: int, generator: torch.Generator
) -> torch.Tensor:
    """Draw one observed/generated layout per sample.

    Args:
        tasks: weights over ``rerender`` (view 0 observed), ``i2v`` (frame 0 of view 0 observed), ``joint``.

    Returns:
        observed: (B, V, F) bool, True = clean input frame.
    """
    names = [t for t in TASKS if tasks.get(t, 0) > 0]
    weights = torch.tensor([float(tasks[t]) for t in names])
    choice = torch.multinomial(weights, batch, replacement=True, generator=generator)
    observed = torch.zeros(batch, views, frames, dtype=torch.bool)
    for b, k in enumerate(choice.tolist()):
        if names[k] == "rerender" and views > 1:
            observed[b, 0] = True
        elif names[k] in ("i2v", "rerender"):  # a one-view rerender degenerates to i2v
            observed[b, 0, 0] = True
    return observed


def add_noise(x0: torch.Tensor, observed: torch.Tensor, shift: float, generator: torch.Generator):
    """Noise every generated frame of a sample to one shared sigma.

    Args:
        x0: (B, V, F, C, h, w) clean model-space frames.
        observed: (B, V, F) bool.

    Returns:
        x_t (B, V, F, C, h, w) with observed frames untouched, timestep (B, V, F) = 1000 sigma (0 where observed),
        target (B, V, F, C, h, w) = noise - x0.
    """
    B = x0.shape[0]
    sigma = shifted_sigmas(torch.rand(B, generator=generator), shift).to(x0.device)  # (B,)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    sigma_f = torch.where(
        observed.to(x0.device), torch.zeros_like(sigma)[:, None, None], sigma[:, None, None]
    )  # (B, V, F)
    s = sigma_f[..., None, None, None]
    x_t = (1 - s) * x0 + s * noise
    return x_t, sigma_f * 1000, noise - x0


def flow_loss(pred: torch.Tensor, target: torch.Tensor, observed: torch.Tensor,
              timestep: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error over the generated frames only.

    Args:
        pred, target: (B, V, F, C, h, w) velocities; observed: (B, V, F) bool.
        timestep: (B, V, F); when given, each frame's error is weighted by sigma^2, which turns the velocity
            error into the error of the implied x_0 (``x_0 = x_t - sigma * v``): every noise level counts
            alike instead of low-noise frames dominating.
    """
    weight = (~observed).to(pred.device, torch.float32)  # (B, V, F)
    scale = weight if timestep is None else weight * (timestep.to(pred.device).float() / 1000) ** 2
    per_element = (pred.float() - target.float()).square() * scale[..., None, None, None]
    weight = weight[..., None, None, None]
    denom = weight.sum() * pred[0, 0, 0].numel()
    return per_element.sum() / denom.clamp_min(1.0)
