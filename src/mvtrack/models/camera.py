"""Camera conditioning: Plücker rays relative to a reference camera, patchified and injected per block."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from mvtrack.geometry import check_extrinsics, check_intrinsics, plucker_rays, resize_intrinsics, w2c_to_c2w


def camera_condition(
    w2c: torch.Tensor, K: torch.Tensor, image_size: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Plücker rays of every view and frame, in the frame of view 0's first camera.

    Poses are made relative to that camera (as CameraCtrl and ReCamMaster do) so that the condition does not
    depend on where the world origin happens to be.

    Args:
        w2c: (B, V, F, 4, 4) OpenCV world-to-camera.
        K: (B, V, F, 3, 3) pixel intrinsics of an ``image_size = (H, W)`` image.
        size: (h, w) of the ray map, i.e. the resolution the model sees (pixels, or latents).

    Returns:
        (B, V, F, 6, h, w) float32.
    """
    if w2c.dim() != 5 or w2c.shape[-2:] != (4, 4):
        raise ValueError(f"w2c: expected (B, V, F, 4, 4), got {tuple(w2c.shape)}")
    if K.shape[:-2] != w2c.shape[:-2] or K.shape[-2:] != (3, 3):
        raise ValueError(f"K: expected {tuple(w2c.shape[:-2]) + (3, 3)}, got {tuple(K.shape)}")
    check_extrinsics(w2c.float(), "w2c")
    check_intrinsics(K.float(), "K")
    w2c, K = w2c.float(), K.float()
    reference = w2c_to_c2w(w2c[:, :1, :1])  # (B, 1, 1, 4, 4)
    relative = w2c @ reference  # maps the reference camera's frame to each camera
    (H, W), (h, w) = image_size, size
    return plucker_rays(relative, resize_intrinsics(K, w / W, h / H), h, w)


class CameraEncoder(nn.Module):
    """Patchified Plücker rays -> one embedding per token, added before every block by its own projection.

    The per-block projections start at zero (``initialize_weights``), so a freshly built or freshly loaded
    backbone computes exactly what it computed without cameras.
    """

    def __init__(self, in_channels: int, dim: int, patch_size: tuple[int, int, int], num_blocks: int):
        super().__init__()
        self.patch_embedding = nn.Conv3d(in_channels, dim, kernel_size=tuple(patch_size), stride=tuple(patch_size))
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim))
        self.block_proj = nn.ModuleList([nn.Linear(dim, dim) for _ in range(num_blocks)])
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for proj in self.block_proj:
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        """rays: (B, 6, V*F, h, w) -> (B, L, D) with L = V*F*h*w / prod(patch)."""
        x = self.patch_embedding(rays)  # (B, D, V*F', h', w')
        return self.mlp(rearrange(x, "b d f h w -> b (f h w) d"))  # (B, L, D)
