"""Track4Gen's refiner: a small conv stack on one block's hidden states, per frame, whose output is trained to
track (``mvtrack.tracking.losses.refiner_loss``) and fed back into the backbone."""

from __future__ import annotations

from torch import nn


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


class RefinerFeedback(nn.Module):
    """``h + zero_conv(stop_grad(R(h)))``: the refined features return to the token stream through a 1x1 conv
    initialised to zero, and no gradient of the diffusion loss reaches the refiner through them."""

    def __init__(self, dim: int, reduction: int = 4, layers: int = 3):
        super().__init__()
        self.refiner = Refiner(dim, reduction, layers)
        self.zero_conv = nn.Conv2d(dim, dim, 1)
        nn.init.zeros_(self.zero_conv.weight)
        nn.init.zeros_(self.zero_conv.bias)

    def forward(self, h):
        """(N, dim, h, w) -> (h + feedback, refined features R(h) for the tracking loss)."""
        refined = self.refiner(h)
        return h + self.zero_conv(refined.detach()), refined
