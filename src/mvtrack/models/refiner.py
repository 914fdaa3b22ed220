"""Track4Gen's refiner: a conv stack on one block's hidden states, per frame, whose output is trained to track
(``mvtrack.tracking.losses.refiner_loss``) and fed back into the backbone.

Two styles (``RefinerFeedback(dim, style=...)``, ``MultiViewTransformer(refiner_style=...)``): ``bottleneck``, a
small residual 3-conv stack (this project's first version, the default, and what older checkpoints hold), and
``paper``, the refiner of the Track4Gen paper (App. A.2) at full width.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

REFINER_STYLES = ("bottleneck", "paper")


class Refiner(nn.Module):
    """``R(h) = h + conv3x3(GELU(conv3x3(GELU(conv3x3(h)))))`` with the last conv at zero: the identity at
    initialisation. A bottleneck of ``dim // reduction`` channels keeps it small beside the blocks.

    Input and output: (N, dim, h, w) per-frame token maps.
    """

    def __init__(self, dim: int, reduction: int = 4, layers: int = 3):
        super().__init__()
        if layers < 2:
            raise ValueError(f"Refiner.layers: expected >= 2, got {layers}")
        mid = max(dim // reduction, 8)
        convs = [nn.Conv2d(dim, mid, 3, padding=1)]
        convs += [nn.Conv2d(mid, mid, 3, padding=1) for _ in range(layers - 2)]
        convs.append(nn.Conv2d(mid, dim, 3, padding=1))
        self.convs = nn.ModuleList(convs)
        self.act = nn.GELU()
        nn.init.zeros_(convs[-1].weight)
        nn.init.zeros_(convs[-1].bias)

    def forward(self, h):
        x = h
        for i, conv in enumerate(self.convs):
            x = conv(x if i == 0 else self.act(x))
        return h + x


class PaperRefiner(nn.Module):
    """Track4Gen's refiner as the paper builds it (App. A.2): 8 full-width 3x3 convs (stride 1, padding 1), the
    first 7 each followed by BatchNorm2d and ReLU, initialised as the identity, in residual form:

        R(h) = h + conv_8(ReLU(BN_7(conv_7( ... ReLU(BN_1(conv_1(h))) ... ))))

    with ``conv_1..7`` Dirac (identity kernels, zero bias), every BN at identity (weight 1, bias 0) and ``conv_8`` at
    zero, so ``R(h) == h`` bit for bit at initialisation, in train and in eval mode.

    Why the residual form, and why the paper's last ReLU is gone: the paper's plain stack (last layer Conv -> ReLU)
    cannot be the identity on signed features whatever its weights: its output is >= 0, and the hidden states of a
    DiT block (of SVD's U-Net block too) are signed. Dirac kernels with BN at identity make the plain stack
    ``ReLU(h)``-like, not ``h``. The paper's stated intent, "initialised as the identity mapping to fully leverage the
    prior of the base model", is met exactly by the residual branch starting at zero. A ReLU after the zero conv
    would (a) only let the branch add non-negative values and (b) pass no gradient at initialisation (ReLU'(0) = 0
    in PyTorch), so the branch would never start learning; the branch therefore ends with the (zero) conv. The layer
    count, width, kernel, Conv-BN-ReLU order and the Dirac-identity initialisation of the hidden convs are the
    paper's. Refined features are therefore signed (the paper's are >= 0), which is why Eq. 3 in
    :func:`~mvtrack.tracking.tokens.soft_argmax_uv` clamps negative similarities (see there).

    BatchNorm in this DiT (batch 2, EMA): in training mode BN normalises each channel over every frame of the
    micro-batch and every token position (B x V x F x h x w values: 2048 at CPU scale, batch 2), so the small clip
    batch is not a small BN batch. It keeps running statistics (momentum 0.1, mixed over the noise levels of the
    batches seen) and uses them in eval mode (``model.eval()``, as ``from_pretrained`` leaves a model), so sampling
    is per-sample and deterministic; the first steps of the branch see eval/train differences only through the
    zero-initialised feedback. The running statistics are buffers: checkpoints save and resume them with the live
    model; the EMA averages parameters only (as before), so an EMA model is evaluated with the live model's running
    statistics. GroupNorm was not needed.

    Input and output: (N, dim, h, w) per-frame token maps.
    """

    def __init__(self, dim: int, layers: int = 8):
        super().__init__()
        if layers < 2:
            raise ValueError(f"PaperRefiner.layers: expected >= 2, got {layers}")
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=1) for _ in range(layers))
        self.norms = nn.ModuleList(nn.BatchNorm2d(dim) for _ in range(layers - 1))
        for conv in self.convs[:-1]:
            nn.init.dirac_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h
        for conv, norm in zip(self.convs[:-1], self.norms):
            # BatchNorm outside autocast, in its parameters' dtype: the CPU's bf16 autocast casts its input but not its
            # float32 parameters and statistics, which batch norm refuses (and float32 statistics are the better ones)
            x = conv(x)
            with torch.autocast(x.device.type, enabled=False):
                x = F.relu(norm(x.to(norm.weight.dtype)))
        return h + self.convs[-1](x)


class RefinerFeedback(nn.Module):
    """``h + zero_conv(stop_grad(R(h)))``: the refined features return to the token stream through a 1x1 conv
    initialised to zero, and no gradient of the diffusion loss reaches the refiner through them.

    Args:
        dim: channels of the hidden states.
        reduction, layers: of the ``bottleneck`` refiner (``layers`` of the ``paper`` one: 8 by default).
        style: ``bottleneck`` (:class:`Refiner`, the default) or ``paper`` (:class:`PaperRefiner`).
    """

    def __init__(self, dim: int, reduction: int = 4, layers: int | None = None, style: str = "bottleneck"):
        super().__init__()
        if style not in REFINER_STYLES:
            raise ValueError(f"refiner style: expected one of {REFINER_STYLES}, got {style!r}")
        if style == "paper":
            self.refiner = PaperRefiner(dim, 8 if layers is None else layers)
        else:
            self.refiner = Refiner(dim, reduction, 3 if layers is None else layers)
        self.zero_conv = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.zero_conv.weight)
        nn.init.zeros_(self.zero_conv.bias)

    def forward(self, h):
        """(N, dim, h, w) -> (h + feedback, refined features R(h) for the tracking loss)."""
        refined = self.refiner(h)
        return h + self.zero_conv(refined.detach()), refined


_SELF_ATTENTION = re.compile(r"wan\.blocks\.\d+\.attn1\.")


def track4gen_trainable(model: nn.Module) -> list[str]:
    """Names of the parameters of a ``MultiViewTransformer`` that Track4Gen fine-tunes (``tracking.trainable:
    track4gen``): the self-attention (``attn1``) of every block, the refiner and its zero conv, and CVD's cross-view
    attention modules if the model has them.

    The paper fine-tunes SVD's temporal transformer blocks, the refiner and the zero conv, and freezes the rest.
    SVD factorises space and time: its temporal blocks are the only layers that exchange information between
    frames, and the per-frame (spatial) layers, which hold the image prior the paper means to keep, stay frozen.
    Wan has no separate temporal blocks (full 3D attention), and in each of its blocks the self-attention is the one
    operator that mixes tokens across frames (and here across views); cross-attention (to the text / null context)
    and the FFN act on each token alone, like SVD's spatial layers. So the analogue is every block's self-attention
    (projections and QK norms), plus the other frame-mixing attention, CVD's cross-view modules. Frozen: patch
    embedding, time / context embedders, each block's modulation table, cross-attention and FFN, the output head,
    the camera encoder and the Track2View conditioner.
    """
    return [n for n, _ in model.named_parameters()
            if _SELF_ATTENTION.match(n) or n.startswith(("refiner.", "cross_view."))]
