"""The Track4Gen loss weight from gradient norms: how strongly the unweighted refiner loss pulls on the parameters
it shares with the diffusion loss, against the diffusion loss itself, on the batches a run would train on.

Track4Gen's weight (8) was set against SVD's latent v-prediction loss; against this project's x_0-space loss it
made the refiner term about 50x the diffusion term (docs/results.md, issue 4). The weight that gives the refiner
loss's gradient a chosen fraction of the diffusion gradient is ``fraction * |g_diff| / |g_ref|``.
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
from dataclasses import dataclass

import torch

from .trainer import Trainer


@dataclass
class GradientNorms:
    """Per-batch gradient norms over the shared parameters and the losses they came from."""

    diffusion: list[float]  # |d L_diff / d theta_shared|, one per batch
    refiner: list[float]  # |d L_ref / d theta_shared| of the unweighted refiner loss
    diffusion_loss: list[float]
    refiner_loss: list[float]  # unweighted
    shared: list[str]  # names of the trainable parameters both losses reach

    @property
    def ratios(self) -> list[float]:
        """``|g_diff| / |g_ref|`` of the batches where the refiner loss has a gradient."""
        return [d / r for d, r in zip(self.diffusion, self.refiner) if r > 0 and d > 0]

    def weight(self, fraction: float) -> float:
        """The refiner weight whose gradient is ``fraction`` of the diffusion loss's gradient (median over batches)."""
        if not fraction > 0:
            raise ValueError(f"fraction: expected > 0, got {fraction}")
        if not self.ratios:
            raise ValueError("no batch had non-zero gradients of both losses on the shared parameters")
        return fraction * statistics.median(self.ratios)


def refiner_gradient_norms(trainer, batches: int = 10) -> GradientNorms:
    """Gradient norms of the diffusion loss and of the unweighted Track4Gen refiner loss of ``trainer``'s first
    ``batches`` micro-steps (steps 0, 1, ... of its data and noise), w.r.t. the trainable parameters both reach.

    The refiner's feedback is stop-gradient, so the refiner loss reaches the backbone only through the refined
    block's input (the blocks up to it, the embeddings, the camera projections); the diffusion loss reaches all of
    those but not the refiner. The losses are the trainer's own (``Trainer.losses``: the forward, data, noise and
    losses of a training step), differentiated here instead of stepped. No weight changes (BatchNorm running
    statistics of a ``paper`` refiner do advance, as in a training step).

    Args:
        trainer: a ``Trainer`` whose ``config.tracking`` enables Track4Gen (refiner_block set, refiner_weight > 0).
        batches: micro-steps to measure.
    """
    cfg = trainer.config.tracking
    if trainer.supervision is None or not cfg.track4gen:
        raise ValueError("tracking: Track4Gen is off (set tracking.refiner_block and a refiner_weight > 0)")
    if batches < 1:
        raise ValueError(f"batches: expected >= 1, got {batches}")
    model = trainer.unwrapped
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    result = GradientNorms([], [], [], [], [])
    for step in range(batches):
        terms = trainer.losses(step, 0)
        diffusion, refiner = terms["diffusion"], terms["refiner"] / cfg.refiner_weight
        g_diff = torch.autograd.grad(diffusion, params, retain_graph=True, allow_unused=True)
        g_ref = torch.autograd.grad(refiner, params, allow_unused=True)
        # the refiner's own parameters never get the diffusion loss's gradient (the stop-gradient)
        both = [i for i, (a, b) in enumerate(zip(g_diff, g_ref))
                if a is not None and b is not None and not named[i][0].startswith("refiner.refiner.")]
        if not result.shared:
            result.shared = [named[i][0] for i in both]
        result.diffusion.append(_norm([g_diff[i] for i in both]))
        result.refiner.append(_norm([g_ref[i] for i in both]))
        result.diffusion_loss.append(float(diffusion.detach()))
        result.refiner_loss.append(float(refiner.detach()))
    return result


def _norm(grads: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))) \
        if grads else 0.0


def calibrate_track4gen_weight(config, batches: int = 10) -> GradientNorms:
    """:func:`refiner_gradient_norms` on a trainer built from a ``TrainConfig`` (its model, start checkpoint,
    refiner, trainable subset and data); nothing is written to ``config.output_dir`` (a temporary one is used)."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(dataclasses.replace(config, output_dir=tmp), resume=False)
        return refiner_gradient_norms(trainer, batches)
