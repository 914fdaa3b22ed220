"""Track2View's dual-view track conditioner: source content carried to where paired 3D tracks say it goes.

Geometry does the transport, with no parameters: source tokens (and the source frames themselves) are sampled
bilinearly at the tracks' source positions and splatted, normalised by weight, at their target positions. The
network only learns what geometry cannot give: a small transformer runs along each track over its frames, with
Fourier features of the target position and depth, so that timing, occlusion and appearance changes can be
aggregated over time. The result reaches the backbone through zero-initialised per-block projections, so a
camera-only checkpoint loads and starts unchanged.

Two paths, each a configuration choice:
    tokens: sample source tokens -> per-track temporal transformer -> splat into the target view's tokens at
            the target positions and into the source view's at the source positions (Track2View's conditioner).
    pixels: splat the source frames (pixels, or latents for a latent model) along the tracks into each target
            frame at the model's input resolution, with a coverage channel, and patch-embed that. Tokens are
            8x8 pixels in the embedded default; the pixel path keeps the sub-token alignment that token
            sampling blurs.
"""

from __future__ import annotations

import math

import torch
from einops import rearrange
from torch import nn

from mvtrack.geometry import bilinear_sample, bilinear_splat, carry_frames, fill_holes


def fourier_features(x: torch.Tensor, bands: int) -> torch.Tensor:
    """(..., C) -> (..., C * 2 * bands): sin and cos of x * pi * 2^k, k < bands (x roughly in [-1, 1])."""
    freqs = math.pi * 2.0 ** torch.arange(bands, device=x.device, dtype=x.dtype)  # (bands,)
    angles = x[..., None] * freqs  # (..., C, bands)
    return torch.cat([angles.sin(), angles.cos()], -1).flatten(-2)


class TrackConditioner(nn.Module):
    """Paired tracks -> one conditioning embedding per token, added before the chosen blocks.

    Args:
        dim: the backbone's token width D.
        in_channels: channels of the model's input frames (3 for pixels, 16 for Wan latents).
        patch_size: the backbone's (1, p_h, p_w) patch.
        num_blocks: the backbone's number of blocks; ``blocks`` index into it.
        blocks: which blocks receive the condition (a zero-initialised projection each).
        width: the per-track transformer's width.
        layers, heads: its depth and heads.
        bands: Fourier bands of the target position and depth.
        tokens, pixels: the two transport paths (above); at least one.
        skip: a gated geometric skip (needs ``pixels``): the model's clean-frame estimate x_0 becomes
            ``x_0 + g * coverage * (splat - x_0)``, with ``splat`` the source frames carried along the tracks and
            ``g`` one learned gate per channel starting at ``skip_init`` (``skip_fixed``: held there). Where tracks
            land, the network then only has to correct the transported pixels instead of re-synthesising them
            through its 8x8-pixel tokens.
        skip_init: the gate's first value (0: closed; 1: the splat replaces x_0 wherever tracks cover a pixel).
        skip_fixed: the gate is not trained (a buffer).
        pixel_head: hidden width of a pixel-resolution head (0: none): three 3x3 convolutions over x_0, the splat
            and its coverage, whose output (zero-initialised, so the model starts unchanged) is added to the skip's
            result on generated frames. It corrects what the skip passes through at the pixels' own resolution
            (holes, splat artefacts), where the backbone predicts each 8x8 patch by one linear map.
        hole_fill: fill the splat's holes (pixels no track lands on) from the covered pixels around them
            (``geometry.fill_holes``) and add ``h * (1 - coverage) * (fill - x_0)`` to the skip's result on generated
            frames, one learned gate per channel ``h`` starting at 0 (the model starts unchanged). At ``h = 1`` with
            the gate at 1 the result is the splat where tracks land and the fill elsewhere, the classical reference's
            image; the network's x_0 shows where ``h`` stays below 1.
        max_token_tracks: at most this many tracks, evenly strided through the given order, go through the
            tokens path (the trainer also shuffles the tracks of every sample); the pixel path takes them all.
            Dense tracks cover pixels, while the per-track transformer's cost grows with their number.
        frame_positions: add fixed Fourier features of the frame index to each track's sequence. False: the
            per-track transformer sees no frame order (the shipped ``mvtrack-S`` was trained so, see its card).
    """

    # Adam moves a parameter by about the learning rate per step, whatever its gradient's scale: a single gate
    # that must travel from 0 to about 1 would need hundreds of steps, so it is stored divided by this factor.
    skip_scale = 32.0

    def __init__(
        self,
        dim: int,
        in_channels: int,
        patch_size: tuple[int, int, int],
        num_blocks: int,
        blocks: tuple[int, ...] = (0,),
        width: int = 128,
        layers: int = 2,
        heads: int = 4,
        bands: int = 6,
        tokens: bool = True,
        pixels: bool = True,
        skip: bool = False,
        max_token_tracks: int | None = None,
        frame_positions: bool = True,
        skip_init: float = 0.0,
        skip_fixed: bool = False,
        pixel_head: int = 0,
        hole_fill: bool = False,
    ):
        super().__init__()
        if not tokens and not pixels:
            raise ValueError("track_conditioner: expected tokens and/or pixels to be enabled")
        bad = [b for b in blocks if not 0 <= b < num_blocks]
        if bad or not blocks:
            raise ValueError(f"track_conditioner.blocks: expected indices in [0, {num_blocks}), got {list(blocks)}")
        self.patch_size, self.bands, self.width = tuple(patch_size), bands, width
        self.blocks = tuple(blocks)
        self.use_tokens, self.use_pixels = tokens, pixels
        if skip and not pixels:
            raise ValueError("track_conditioner.skip: needs the pixels path")
        self.max_token_tracks, self.frame_positions = max_token_tracks, frame_positions
        if (skip_fixed or skip_init or pixel_head or hole_fill) and not skip:
            raise ValueError("track_conditioner: skip_init, skip_fixed, pixel_head and hole_fill need skip")
        gate = torch.full((in_channels,), float(skip_init) / self.skip_scale) if skip else None
        if skip_fixed:
            self.register_buffer("skip_gate", gate)
        else:
            self.skip_gate = nn.Parameter(gate) if skip else None
        self.pixel_head = self._build_pixel_head(in_channels, pixel_head) if pixel_head else None
        self.hole_gate = nn.Parameter(torch.zeros(in_channels)) if hole_fill else None  # stored / skip_scale
        if tokens:
            self.token_in = nn.Linear(dim, width)
            self.geometry_in = nn.Linear(5 * 2 * bands + 5, width)  # target xy, source xy, log-depth, raw and FF
            self.missing = nn.Parameter(torch.zeros(width))  # frames where the source does not see the point
            layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.0, batch_first=True,
                                               norm_first=True, activation="gelu")
            self.temporal = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.token_out = nn.Linear(width, dim)
        if pixels:
            self.pixel_embedding = nn.Conv3d(in_channels + 1, dim, kernel_size=self.patch_size, stride=self.patch_size,
                                             bias=False)
        # No biases from here on: a token that no track reaches gets exactly zero, so tracks dropped in training and
        # tracks absent at inference both mean camera-only behaviour.
        self.mlp = nn.Sequential(nn.SiLU(), nn.Linear(dim, dim, bias=False))
        self.block_proj = nn.ModuleDict({str(b): nn.Linear(dim, dim, bias=False) for b in self.blocks})
        self.initialize_weights()

    def initialize_weights(self) -> None:
        for proj in self.block_proj.values():  # the condition starts as a no-op
            nn.init.zeros_(proj.weight)
        if self.pixel_head is not None:
            nn.init.zeros_(self.pixel_head[-1].weight)
            nn.init.zeros_(self.pixel_head[-1].bias)

    @staticmethod
    def _build_pixel_head(channels: int, width: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(2 * channels + 1, width, 3, padding=1), nn.GELU(),
                             nn.Conv2d(width, width, 3, padding=1), nn.GELU(),
                             nn.Conv2d(width, channels, 3, padding=1))

    def add_pixel_head(self, width: int) -> None:
        """Give a conditioner built without one a pixel head (zero-initialised: outputs do not change)."""
        if self.skip_gate is None or self.pixel_head is not None:
            raise ValueError("track_conditioner.pixel_head: needs the skip, and the conditioner has no head yet")
        channels = self.skip_gate.shape[0]
        self.pixel_head = self._build_pixel_head(channels, width).to(self.skip_gate.device)
        nn.init.zeros_(self.pixel_head[-1].weight)
        nn.init.zeros_(self.pixel_head[-1].bias)

    def add_hole_fill(self) -> None:
        """Give a conditioner built without it the hole fill (its gate at 0: outputs do not change)."""
        if self.skip_gate is None or self.hole_gate is not None:
            raise ValueError("track_conditioner.hole_fill: needs the skip, and the conditioner has no hole fill yet")
        self.hole_gate = nn.Parameter(torch.zeros_like(self.skip_gate))

    def project(self, block: int, condition: torch.Tensor) -> torch.Tensor | None:
        """What block ``block`` adds to its input: (B, L, D), or None if it receives nothing."""
        proj = self.block_proj[str(block)] if str(block) in self.block_proj else None
        return None if proj is None else proj(condition)

    def forward(
        self,
        tokens: torch.Tensor,
        sample: torch.Tensor,
        track_xy: torch.Tensor,
        track_depth: torch.Tensor,
        track_visible: torch.Tensor,
        source: int = 0,
        source_frame: torch.Tensor | None = None,
        weight: torch.Tensor | None = None,
        splat: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The condition of every token, and the splat the geometric skip uses.

        Args:
            tokens: (B, V*F*h'*w', D) patch-embedded tokens (the source view's are clean: it is observed).
            sample: (B, V, F, C, h, w) the model's input frames.
            track_xy: (B, V, F, N, 2) positions at the input's resolution (pixels of an h x w frame).
            track_depth: (B, V, F, N) z in each camera; track_visible: (B, V, F, N) bool; view ``source`` holds
                the source positions (visible = known there), the others the targets.
            source_frame: (B, V, F, N) long: the source frame whose pixel gives each track its colour in the pixel
                path (static points seen best from another frame); None: the same frame.
            weight: (B, V, F, N) how much each track counts in the pixel path's splat (``PairedTracks.weight``);
                None: 1.
            splat: (B, V, F, C + 1, h, w) the pixel path's splat made by the caller, colour and coverage, instead
                of carrying ``sample``'s source frames (``data.source_splat``: a real video splatted at its
                geometry's finer resolution, then reduced); its source view is not read. None: carried here.

        Returns:
            condition (B, V*F*h'*w', D); splat (B, V, F, C + 1, h, w): the source frames carried to the target views
            with a coverage channel (zero in the source view), None without the pixels path.
        """
        B, V, F, C, h, w = sample.shape
        _, ph, pw = self.patch_size
        gh, gw = h // ph, w // pw
        N = track_xy.shape[-2]
        shape = (B, V, F, N)
        if track_xy.shape != (*shape, 2) or track_depth.shape != shape or track_visible.shape != shape:
            raise ValueError(f"tracks: expected xy {(B, V, F, N, 2)}, depth and visible {(B, V, F, N)}, got "
                             f"{tuple(track_xy.shape)}, {tuple(track_depth.shape)}, {tuple(track_visible.shape)}")
        if source_frame is not None and (source_frame.shape != shape or source_frame.min() < 0
                                         or source_frame.max() >= F):
            raise ValueError(f"track_source_frame: expected frame indices in [0, {F}) of shape {shape}, got "
                             f"{tuple(source_frame.shape)}")
        if weight is not None and weight.shape != shape:
            raise ValueError(f"track_weight: expected {shape}, got {tuple(weight.shape)}")
        if splat is not None and splat.shape != (B, V, F, C + 1, h, w):
            raise ValueError(f"track_splat: expected {(B, V, F, C + 1, h, w)}, got {tuple(splat.shape)}")
        dtype = tokens.dtype
        # positions far outside the frame carry no more information than at its border's distance; bounded so that
        # no point projected from near a camera centre reaches the Fourier features as a huge number
        bound = track_xy.new_tensor([w, h]).float()
        xy = torch.nan_to_num(track_xy.float(), nan=0.0).clamp(min=-bound, max=2 * bound)
        depth, vis = torch.nan_to_num(track_depth.float(), nan=0.0, posinf=0.0, neginf=0.0), track_visible
        targets = [v for v in range(V) if v != source]
        condition = tokens.new_zeros(B, V, F, gh, gw, tokens.shape[-1]).float()
        if self.use_pixels:
            pixels, splat = self._pixel_path(sample, xy, vis, source, targets, source_frame, weight, splat)
            condition = condition + pixels
        else:
            splat = None
        if self.use_tokens:
            condition = condition + self._token_path(tokens, *self._token_subset(xy, depth, vis), source, targets,
                                                     (h, w))
        condition = rearrange(condition, "b v f h w d -> b (v f h w) d")  # (B, L, D)
        return self.mlp(condition.to(self.mlp[1].weight.dtype)).to(dtype), splat

    def _token_coords(self, xy: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates -> token-grid coordinates (token i's centre is pixel i * p + (p - 1) / 2)."""
        _, ph, pw = self.patch_size
        return (xy - xy.new_tensor([(pw - 1) / 2, (ph - 1) / 2])) / xy.new_tensor([pw, ph])

    def _token_subset(self, xy, depth, vis):
        N = xy.shape[-2]
        if self.max_token_tracks is None or N <= self.max_token_tracks:
            return xy, depth, vis
        keep = torch.linspace(0, N - 1, self.max_token_tracks, device=xy.device).round().long()  # spread over any order
        return xy[..., keep, :], depth[..., keep], vis[..., keep]

    def apply_skip(self, x0: torch.Tensor, splat: torch.Tensor | None, generated: torch.Tensor) -> torch.Tensor:
        """The gated geometric skip (see ``skip``) on a clean-frame estimate ``x0 (B, V, F, C, h, w)``, with the
        ``splat`` of this forward, on ``generated (B, V, F)`` frames only."""
        if self.skip_gate is None or splat is None:
            return x0
        B, V = x0.shape[:2]
        mask = generated[..., None, None, None]
        warped, lands = splat[:, :, :, :-1], splat[:, :, :, -1:]  # colour; how much any track lands (coverage)
        gate = (self.skip_gate.float() * self.skip_scale).view(1, 1, 1, -1, 1, 1)
        out = x0.float() + gate * lands * mask * (warped - x0.float())
        if self.hole_gate is not None:
            filled = rearrange(fill_holes(rearrange(warped, "b v f c h w -> (b v f) c h w"),
                                          rearrange(lands > 0, "b v f c h w -> (b v f) c h w")),
                               "(b v f) c h w -> b v f c h w", b=B, v=V)
            hole = (self.hole_gate.float() * self.skip_scale).view(1, 1, 1, -1, 1, 1)
            out = out + hole * (1 - lands.clamp(max=1)) * mask * (filled - x0.float())
        if self.pixel_head is not None:
            features = rearrange(torch.cat([x0.float(), warped, lands], 3), "b v f c h w -> (b v f) c h w")
            head = self.pixel_head[0].weight.dtype
            correction = rearrange(self.pixel_head(features.to(head)).float(), "(b v f) c h w -> b v f c h w", b=B, v=V)
            out = out + correction * mask
        return out.to(x0.dtype)

    def _token_path(self, tokens, xy, depth, vis, source, targets, size):
        B, V, F, N, _ = xy.shape
        known = vis[:, source]
        (h, w), (_, ph, pw) = size, self.patch_size
        gh, gw = h // ph, w // pw
        # 1. Source tokens sampled at the source positions, frame by frame. The projection to the track width is
        #    linear, so it is applied before sampling (on F * h' * w' tokens rather than F * N samples; the bias
        #    after), and its transpose likewise after splatting: same result, a fraction of the work.
        source_tokens = rearrange(tokens, "b (v f h w) d -> b v f h w d", v=V, f=F, h=gh, w=gw)[:, source].float()
        wdtype = self.token_in.weight.dtype
        source_tokens = nn.functional.linear(source_tokens, self.token_in.weight.float())  # (B, F, h', w', width)
        src_xy = self._token_coords(xy[:, source])  # (B, F, N, 2)
        sampled = bilinear_sample(rearrange(source_tokens, "b f h w c -> (b f) c h w"),
                                  rearrange(src_xy, "b f n c -> (b f) n c"))  # (B*F, N, width)
        content = torch.where(rearrange(known, "b f n -> (b f) n")[..., None], sampled + self.token_in.bias.float(),
                              self.missing.float())  # (B*F, N, width), float32 until the modules
        content = rearrange(content, "(b f) n c -> b n f c", b=B)  # (B, N, F, width)

        # 2. Per target view: geometry features, the temporal transformer along each track, splat
        scale = xy.new_tensor([2 / max(w - 1, 1), 2 / max(h - 1, 1)])
        ref = depth[:, source].masked_fill(~known, float("nan")).flatten(1).nanmedian(-1).values  # (B,)
        ref = torch.nan_to_num(ref, nan=1.0).clamp_min(1e-6)[:, None, None]
        src_norm = xy[:, source] * scale - 1  # (B, F, N, 2)
        frame_pos = 0.0
        if self.frame_positions:  # fixed, not learned: (F, 8) Fourier features of the frame index, zero-padded
            frame_pos = fourier_features(torch.linspace(-1, 1, F, device=xy.device)[:, None], 4)
            frame_pos = nn.functional.pad(frame_pos, (0, self.width - frame_pos.shape[-1]))  # (F, width)
        out = torch.zeros(B, V, F, self.width, gh, gw, device=xy.device)
        src_total = torch.zeros(B * F, self.width, gh, gw, device=xy.device)
        src_mass = torch.zeros(B * F, 1, gh, gw, device=xy.device)
        for v in targets:
            tgt_norm = xy[:, v] * scale - 1
            log_depth = torch.where(known, (depth[:, v].clamp_min(1e-6) / ref).log(), torch.zeros_like(ref))
            geo = torch.cat([tgt_norm, src_norm, log_depth[..., None]], -1)  # (B, F, N, 5)
            geo = torch.where(known[..., None], geo, torch.zeros_like(geo))
            geo = self.geometry_in(torch.cat([geo, fourier_features(geo, self.bands)], -1).to(wdtype)).float()
            seq = content + rearrange(geo, "b f n c -> b n f c") + frame_pos  # (B, N, F, width)
            pad = rearrange(~known, "b f n -> (b n) f")
            pad = pad & ~pad.all(-1, keepdim=True)  # a track known nowhere attends freely; it is never splatted
            hidden = self.temporal(rearrange(seq, "b n f c -> (b n) f c").to(wdtype), src_key_padding_mask=pad)
            values = rearrange(hidden.float(), "(b n) f c -> (b f) n c", b=B)  # (B*F, N, width)
            tgt_xy = rearrange(self._token_coords(xy[:, v]), "b f n c -> (b f) n c")
            weight = rearrange(vis[:, v] & known, "b f n -> (b f) n").float()
            total, mass = bilinear_splat(values, tgt_xy, weight, (gh, gw))
            out[:, v] = rearrange(total / mass.clamp_min(1e-6), "(b f) d h w -> b f d h w", b=B)
            total, mass = bilinear_splat(values, rearrange(src_xy, "b f n c -> (b f) n c"),
                                         rearrange(known, "b f n -> (b f) n").float(), (gh, gw))
            src_total, src_mass = src_total + total, src_mass + mass
        out[:, source] = rearrange(src_total / src_mass.clamp_min(1e-6), "(b f) d h w -> b f d h w", b=B)
        reached = out.abs().sum(3, keepdim=True) > 0  # tokens some track splatted onto; the others stay exactly 0
        out = rearrange(out, "b v f c h w -> b v f h w c")
        projected = self.token_out(out.to(wdtype)).float()  # (B, V, F, h', w', D)
        return torch.where(rearrange(reached, "b v f c h w -> b v f h w c"), projected, 0.0)

    def _pixel_path(self, sample, xy, vis, source, targets, source_frame=None, weight=None, given=None):
        B, V, F, C, h, w = sample.shape
        frames = sample[:, source].float()  # (B, F, C, h, w)
        warped = torch.zeros(B, V, F, C + 1, h, w, device=sample.device)
        if given is not None:  # made by the caller: the targets' views as given, the source's zero as below
            warped[:, targets] = given[:, targets].float().to(sample.device)
        for v in targets if given is None else ():
            total, mass, coverage = carry_frames(frames, xy[:, source], vis[:, source], xy[:, v], vis[:, v],
                                                 None if source_frame is None else source_frame[:, v],
                                                 None if weight is None else weight[:, v])
            # colour: the weighted mean; coverage: where any track lands (a low-weight track still carries a colour)
            warped[:, v] = torch.cat([total / mass.clamp_min(1e-6), coverage.clamp(max=1.0)], 2)  # (B, F, C+1, h, w)
        embedded = self.pixel_embedding(rearrange(warped, "b v f c h w -> b c (v f) h w").to(
            self.pixel_embedding.weight.dtype))  # (B, D, V*F, h', w')
        embedded[:, :, source * F : (source + 1) * F] = 0  # the source view is given as it is
        return rearrange(embedded.float(), "b d (v f) h w -> b v f h w d", v=V), warped
