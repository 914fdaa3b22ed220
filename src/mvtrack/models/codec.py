"""Where the model works: pixels (the embedded default) or Wan VAE latents (pretrained Wan2.1)."""

from __future__ import annotations

import torch
from einops import rearrange


class PixelCodec:
    """Pixel space: frames in [0, 1] <-> model space in [-1, 1]; one model frame per video frame."""

    channels = 3
    spatial_factor = 1
    temporal_factor = 1

    def check_frames(self, num_frames: int) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames: expected >= 1, got {num_frames}")

    def latent_frames(self, num_frames: int) -> int:
        return num_frames

    def camera_frames(self, num_frames: int) -> torch.Tensor:
        """Index of the video frame whose camera conditions each model frame."""
        return torch.arange(num_frames)

    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, V, T, 3, H, W) in [0, 1] -> (B, V, T, 3, H, W) in [-1, 1]."""
        return video * 2 - 1

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, V, T, 3, H, W) -> frames in [0, 1]."""
        return ((latents + 1) / 2).clamp(0, 1)


class WanVAECodec:
    """Wan2.1's causal video VAE: T = 1 + 4k frames -> 1 + k latent frames, 8x smaller, normalised per channel.

    Latent frame 0 encodes frame 0 and latent frame k encodes frames 4k-3..4k, so latent frame k is
    conditioned on the camera of frame 4k.
    """

    def __init__(self, vae):
        self.vae = vae
        cfg = vae.config
        self.channels = cfg.z_dim
        self.spatial_factor = cfg.scale_factor_spatial
        self.temporal_factor = cfg.scale_factor_temporal
        self.mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)
        if self.mean.shape[1] != self.channels or self.std.shape[1] != self.channels:
            raise ValueError(f"vae config: latents_mean/latents_std must have z_dim={self.channels} entries")

    def check_frames(self, num_frames: int) -> None:
        if num_frames < 1 or (num_frames - 1) % self.temporal_factor:
            raise ValueError(f"num_frames: the Wan VAE expects 1 + {self.temporal_factor}k frames, got {num_frames}")

    def latent_frames(self, num_frames: int) -> int:
        self.check_frames(num_frames)
        return (num_frames - 1) // self.temporal_factor + 1

    def camera_frames(self, num_frames: int) -> torch.Tensor:
        return torch.arange(self.latent_frames(num_frames)) * self.temporal_factor

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, V, T, 3, H, W) in [0, 1] -> normalised latent means (B, V, 1 + (T-1)/4, z, H/8, W/8)."""
        B = video.shape[0]
        self.check_frames(video.shape[2])
        x = rearrange(video * 2 - 1, "b v t c h w -> (b v) c t h w").to(self.vae.dtype)
        z = self.vae.encode(x).latent_dist.mode().float()
        z = (z - self.mean.to(z.device)) / self.std.to(z.device)
        return rearrange(z, "(b v) c f h w -> b v f c h w", b=B)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, V, F, z, h, w) normalised latents -> frames (B, V, 1 + 4(F-1), 3, 8h, 8w) in [0, 1]."""
        B = latents.shape[0]
        z = rearrange(latents.float(), "b v f c h w -> (b v) c f h w")
        z = z * self.std.to(z.device) + self.mean.to(z.device)
        x = self.vae.decode(z.to(self.vae.dtype)).sample.float()
        return rearrange((x + 1) / 2, "(b v) c t h w -> b v t c h w", b=B).clamp(0, 1)
