"""The multi-view backbone: diffusers' Wan DiT over views concatenated along frames, with camera conditioning.

Each view is *observed* (clean tokens, timestep 0) or *generated* (noised, its own timestep). The timestep is
given per view and frame and reaches every token through Wan's per-token modulation (the mechanism Wan2.2 TI2V
uses for its clean first frame), so one model covers re-rendering, image-to-video and joint N-view generation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import partial

import torch
from diffusers import ConfigMixin, ModelMixin, WanTransformer3DModel
from diffusers.configuration_utils import register_to_config
from diffusers.utils import BaseOutput
from einops import rearrange, repeat
from torch import nn

from mvtrack.config import section

from .camera import CameraEncoder
from .epipolar import (
    EpipolarAttnProcessor,
    EpipolarCrossViewAttention,
    EpipolarMask,
    build_epipolar_mask,
    check_epipolar_config,
    pick_backend,
)
from .refiner import RefinerFeedback
from .sections import EpipolarConfig, TrackConditionerConfig
from .track_conditioner import TrackConditioner


def _masked_block(block, mask: EpipolarMask | None, *args):
    """Run a Wan block whose self-attention is an ``EpipolarAttnProcessor`` under ``mask`` for this call only (a
    gradient-checkpointing recompute calls this again, so it sees the same mask)."""
    processor = block.attn1.processor
    if not isinstance(processor, EpipolarAttnProcessor):
        raise TypeError(f"epipolar: block self-attention runs {type(processor).__name__}, not the epipolar processor "
                         "(another processor, e.g. Q/K capture, replaced it on a masked block)")
    processor.mask = mask
    try:
        return block(*args)
    finally:
        processor.mask = None


@dataclass
class MultiViewTransformerOutput(BaseOutput):
    """sample: (B, V, F, C, h, w), the predicted flow velocity (noise - data) of every frame."""

    sample: torch.Tensor


class MultiViewTransformer(ModelMixin, ConfigMixin):
    """Wan DiT for V synchronised views, conditioned on per-pixel Plücker rays.

    Args:
        wan_config: keyword arguments of ``diffusers.WanTransformer3DModel`` (its config; temporal patch must be 1
            so that every token belongs to one view and frame).
        camera_channels: channels of the camera map (6 for Plücker rays).
        context_tokens: length of the learned null context used when no text embedding is given; Wan's
            cross-attention is kept as is so that pretrained Wan weights load unchanged.
        prediction_type: what the network's last layer outputs. ``velocity`` (Wan's own, for pretrained Wan) or
            ``sample``: the clean frames x_0, turned into the velocity ``(x_t - x_0) / sigma`` (sigma clamped at
            ``min_sigma``). Pixel-space models with large patches learn far faster predicting x_0: a velocity
            output must carry the full-strength noise of every 8x8x3 patch through the network ("Back to Basics:
            Let Denoising Generative Models Denoise", Li & He 2025). Either way ``forward`` returns the velocity.
        min_sigma: the clamp of the division for ``sample`` prediction.
        refiner_block: Track4Gen: index of the block whose output hidden states, reshaped per frame, go through an
            identity-initialised refiner and return as ``h + zero_conv(stop_grad(R(h)))``; None (default) for none.
            The refined features of the last forward are kept in ``self.refined`` ((B*V*F, D, h', w')).
        refiner_style: which refiner (``mvtrack.models.refiner``): ``bottleneck`` (default; what models saved
            before the option hold) or ``paper`` (Track4Gen's 8-layer full-width Conv-BN-ReLU stack).
        track_conditioner: Track2View: a ``TrackConditionerConfig`` or its mapping (``TrackConditioner``'s keyword
            arguments: ``blocks``, ``width``, ``tokens``, ``pixels``, ...); None (default) for none. With it, ``forward`` takes paired tracks; without tracks
            the model runs as camera-only.
        epipolar: CVD: an ``EpipolarConfig`` or its mapping (``mode`` module | processor, ``blocks``
            (default: every other block), ``band`` in tokens, ``decay`` (None: hard band), ``cross_frames``,
            ``coincident``, ``backend``; see ``mvtrack.models.epipolar``); None (default) for none. With it,
            ``forward`` takes an ``EpipolarMask`` from ``epipolar_mask``; without one the model runs as camera-only.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["WanTransformerBlock"]
    _keep_in_fp32_modules = WanTransformer3DModel._keep_in_fp32_modules

    @register_to_config
    def __init__(
        self,
        wan_config: dict,
        camera_channels: int = 6,
        context_tokens: int = 1,
        prediction_type: str = "velocity",
        min_sigma: float = 0.05,
        refiner_block: int | None = None,
        refiner_style: str = "bottleneck",
        track_conditioner: TrackConditionerConfig | dict | None = None,
        epipolar: EpipolarConfig | dict | None = None,
    ):
        super().__init__()
        # the sections checked (types, choices, unknown keys) before anything is built; the config records them in
        # full, as JSON, so that a saved model states every setting it was built with
        track_conditioner = section(TrackConditionerConfig, track_conditioner or None, "track_conditioner")
        epipolar = section(EpipolarConfig, epipolar or None, "epipolar")
        self.register_to_config(track_conditioner=track_conditioner and track_conditioner.kwargs(),
                                epipolar=epipolar and epipolar.kwargs())
        if prediction_type not in ("velocity", "sample"):
            raise ValueError(f"prediction_type: expected velocity or sample, got {prediction_type!r}")
        if tuple(wan_config.get("patch_size", (1, 2, 2)))[0] != 1:
            raise ValueError(f"wan_config.patch_size: expected temporal patch 1, got {wan_config['patch_size']}")
        self.wan = WanTransformer3DModel(**wan_config)
        self._build_camera_branch(camera_channels, context_tokens)
        wan = self.wan.config
        dim = wan.num_attention_heads * wan.attention_head_dim
        self.gradient_checkpointing = False
        if refiner_block is not None and not 0 <= refiner_block < wan.num_layers:
            raise ValueError(f"refiner_block: expected a block index in [0, {wan.num_layers}), got {refiner_block}")
        self.refiner = RefinerFeedback(dim, style=refiner_style) if refiner_block is not None else None
        self.refined: torch.Tensor | None = None
        self.conditioner = self._build_track_conditioner(track_conditioner) if track_conditioner else None
        self.cross_view = None  # CVD's cross-view attention modules (module mode), by block index (not `epipolar`: a
        # submodule named like a config key is shadowed by diffusers' config lookup)
        self._epipolar_config = self._build_epipolar(epipolar) if epipolar else None

    def _build_camera_branch(self, camera_channels: int, context_tokens: int) -> None:
        """The camera encoder (zero projections) and the learned null context, fresh."""
        wan = self.wan.config
        dim = wan.num_attention_heads * wan.attention_head_dim
        self.camera_encoder = CameraEncoder(camera_channels, dim, tuple(wan.patch_size), wan.num_layers)
        self.null_context = nn.Parameter(torch.randn(1, context_tokens, wan.text_dim) * 0.02)

    def _build_epipolar(self, settings: EpipolarConfig) -> dict:
        wan = self.wan.config
        cfg = check_epipolar_config(settings, wan.num_layers)
        dim = wan.num_attention_heads * wan.attention_head_dim
        if cfg["mode"] == "module":
            self.cross_view = nn.ModuleDict(
                {str(b): EpipolarCrossViewAttention(dim, wan.num_attention_heads) for b in cfg["blocks"]}
            )
        else:
            for b in cfg["blocks"]:
                self.wan.blocks[b].attn1.set_processor(EpipolarAttnProcessor())
        return cfg

    def add_epipolar(self, **kwargs) -> None:
        """Give a model built without it CVD's epipolar attention (module mode starts as a no-op), e.g. to fine-tune
        a camera-only checkpoint."""
        if self._epipolar_config is not None:
            raise ValueError("epipolar: the model already has epipolar attention")
        settings = section(EpipolarConfig, kwargs, "epipolar")
        self._epipolar_config = self._build_epipolar(settings)
        if self.cross_view is not None:
            self.cross_view.to(device=self.device, dtype=self.dtype)
        self.register_to_config(epipolar=settings.kwargs())

    def epipolar_mask(
        self, w2c: torch.Tensor, K: torch.Tensor, size: tuple[int, int], sample_size: tuple[int, int],
        coincident: str | None = None,
    ) -> EpipolarMask | None:
        """The epipolar masks of one camera set, built once and passed as ``forward``'s ``epipolar`` at every step
        (None for a model without epipolar attention).

        Args:
            w2c: (B, V, F, 4, 4) of each model frame; K: (B, V, F, 3, 3) pixel intrinsics of a ``size = (H, W)``
                image; sample_size: (h, w) of the model's input (pixels or latents), which sets the token grid.
            coincident: overrides the configured handling of views that share a centre (``homography`` for
                homography pseudo-views, see ``models.epipolar.token_epipolar_distances``).
        """
        cfg = self._epipolar_config
        if cfg is None:
            return None
        _, ph, pw = self.patch_size
        backend = pick_backend(cfg["backend"], w2c.device)
        return build_epipolar_mask(
            w2c, K, size, (sample_size[0] // ph, sample_size[1] // pw), band=float(cfg["band"]),
            decay=None if cfg["decay"] is None else float(cfg["decay"]), cross_frames=bool(cfg["cross_frames"]),
            coincident=coincident or cfg["coincident"], backend=backend, dtype=self.dtype,
        )

    def _build_track_conditioner(self, settings: TrackConditionerConfig) -> TrackConditioner:
        wan = self.wan.config
        dim = wan.num_attention_heads * wan.attention_head_dim
        kwargs = settings.kwargs()
        kwargs["blocks"] = tuple(kwargs["blocks"])
        return TrackConditioner(dim, wan.in_channels, tuple(wan.patch_size), wan.num_layers, **kwargs)

    def add_track_conditioner(self, **kwargs) -> None:
        """Give a model built without one a Track2View conditioner (zero-initialised: outputs do not change), e.g.
        to fine-tune a camera-only checkpoint."""
        if self.conditioner is not None:
            raise ValueError("track_conditioner: the model already has one")
        settings = section(TrackConditionerConfig, kwargs, "track_conditioner")
        self.conditioner = self._build_track_conditioner(settings).to(device=self.device, dtype=self.dtype)
        self.register_to_config(track_conditioner=settings.kwargs())

    EXTENSIBLE = ("pixel_head", "skip_init", "skip_fixed", "hole_fill")

    def extend_track_conditioner(self, **changes) -> None:
        """Change a trained conditioner's skip in place: add a pixel head (zero-initialised: outputs unchanged) or
        remove one (``pixel_head=0``: its correction is no longer added), add or remove the hole fill (its gate at 0:
        outputs unchanged), and set or freeze the gate (``skip_init``: its value, ``skip_fixed``: held there). Only
        ``EXTENSIBLE`` keys."""
        cond = self.conditioner
        bad = set(changes) - set(self.EXTENSIBLE)
        if cond is None or cond.skip_gate is None or bad:
            raise ValueError(f"track_conditioner: a model with a skip can change only {self.EXTENSIBLE} in place, "
                             f"got {sorted(changes)}")
        if changes.get("pixel_head") and cond.pixel_head is None:
            cond.add_pixel_head(int(changes["pixel_head"]))
        elif "pixel_head" in changes and not changes["pixel_head"]:
            cond.pixel_head = None
        if changes.get("hole_fill") and cond.hole_gate is None:
            cond.add_hole_fill()
        elif "hole_fill" in changes and not changes["hole_fill"]:
            cond.hole_gate = None
        gate = cond.skip_gate.detach().clone()
        if "skip_init" in changes:
            gate.fill_(float(changes["skip_init"]) / cond.skip_scale)
        fixed = changes.get("skip_fixed", not isinstance(cond.skip_gate, nn.Parameter))
        del cond.skip_gate
        if fixed:
            cond.register_buffer("skip_gate", gate)
        else:
            cond.skip_gate = nn.Parameter(gate)
        settings = section(TrackConditionerConfig, {**dict(self.config.track_conditioner), **changes},
                           "track_conditioner")
        self.register_to_config(track_conditioner=settings.kwargs())

    @classmethod
    def from_wan(cls, wan: WanTransformer3DModel, camera_channels: int = 6, context_tokens: int = 1):
        """Wrap a (pretrained) Wan transformer; the new camera branch starts at zero.

        ``wan`` itself becomes the backbone, as loaded: no second copy of its weights is built (at 1.3B a second
        float32 build costs 6 GiB and ~20 s), and the modules Wan keeps in float32 stay float32 when it was loaded
        in bf16. The camera branch is built on ``wan``'s device in its dtype.
        """
        config = {k: v for k, v in wan.config.items() if not k.startswith("_")}  # drops _name_or_path etc.
        with torch.device("meta"):  # the skeleton only: its Wan is replaced by ``wan`` just below
            model = cls(config, camera_channels, context_tokens)
        model.wan = wan
        with torch.device(wan.device):
            model._build_camera_branch(camera_channels, context_tokens)
        model.camera_encoder.to(wan.dtype)
        model.null_context.data = model.null_context.data.to(wan.dtype)
        return model

    def add_refiner(self, block: int, style: str | None = None) -> None:
        """Give a model built without one a Track4Gen refiner after ``block`` (identity refiner, zero feedback: the
        outputs do not change); ``style``: ``bottleneck`` (None: the model's ``refiner_style``) or ``paper``."""
        style = style or self.config.refiner_style
        if self.refiner is not None:
            if self.config.refiner_block != block:
                raise ValueError(f"refiner_block: the model already refines block {self.config.refiner_block}, "
                                 f"not {block}")
            if self.config.refiner_style != style:
                raise ValueError(f"refiner_style: the model already has a {self.config.refiner_style!r} refiner, "
                                 f"not {style!r}")
            return
        n = self.wan.config.num_layers
        if not 0 <= block < n:
            raise ValueError(f"refiner_block: expected a block index in [0, {n}), got {block}")
        dim = self.wan.config.num_attention_heads * self.wan.config.attention_head_dim
        self.refiner = RefinerFeedback(dim, style=style).to(device=self.device, dtype=self.dtype)
        self.register_to_config(refiner_block=block, refiner_style=style)

    def check_positions(self, frames: int, height: int, width: int) -> None:
        """Refuse an input longer than Wan's RoPE table: ``frames`` model frames of all views together (views follow
        one another along the frame axis) and an ``height x width`` sample; diffusers would fail deep inside the
        rotary embedding (or silently reuse positions) instead."""
        _, ph, pw = self.patch_size
        limit = self.wan.config.rope_max_seq_len
        for what, n in (("frames (all views together)", frames), ("token rows", height // ph),
                        ("token columns", width // pw)):
            if n > limit:
                raise ValueError(f"sample: {n} {what}, more than the model's RoPE table holds (rope_max_seq_len "
                                 f"{limit}); generate fewer views together (--views-per-group), fewer frames or a "
                                 "smaller size")

    def sampling_velocity(self, velocity: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        """``forward``'s velocity at the true sigma, for sampling.

        A ``sample``-predicting model divides by sigma clamped at ``min_sigma``, which bounds a velocity-space
        training loss at tiny sigma; an Euler step from sigma < ``min_sigma`` to 0 would then stop ``sigma /
        min_sigma`` of the way to the model's x_0 (about 1/255 of noise left at 25 steps). The division is undone
        here: ``(x_t - x_0) / sigma`` exactly, so the last step lands on x_0. Velocity models: unchanged.

        Args:
            velocity: (B, V, F, C, h, w) from ``forward`` (or a guided combination of its outputs).
            timestep: (B, V, F) in [0, 1000]; frames at 0 (observed) are left as they are.
        """
        if self.config.prediction_type != "sample":
            return velocity
        sigma = (timestep.float() / 1000)[..., None, None, None]
        factor = torch.where(sigma > 0, sigma.clamp_min(self.config.min_sigma) / sigma.clamp_min(1e-12), 1.0)
        return (velocity.float() * factor).to(velocity.dtype)

    @property
    def patch_size(self) -> tuple[int, int, int]:
        return tuple(self.wan.config.patch_size)

    @property
    def in_channels(self) -> int:
        return self.wan.config.in_channels

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        camera: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        track_xy: torch.Tensor | None = None,
        track_depth: torch.Tensor | None = None,
        track_visible: torch.Tensor | None = None,
        track_source: int = 0,
        track_source_frame: torch.Tensor | None = None,
        track_weight: torch.Tensor | None = None,
        track_splat: torch.Tensor | None = None,
        epipolar: EpipolarMask | None = None,
        return_dict: bool = True,
    ) -> MultiViewTransformerOutput | tuple:
        """Predict the flow velocity of every frame of every view.

        Args:
            sample: (B, V, F, C, h, w) frames (pixels in [-1, 1] or latents), noised where generated.
            timestep: (B, V, F) in [0, 1000]: sigma * 1000 for generated frames, 0 for observed ones.
            camera: (B, V, F, 6, h, w) Plücker rays (``camera_condition``) at the sample's resolution.
            encoder_hidden_states: optional (B, S, text_dim) text embedding; the learned null context otherwise.
            track_xy, track_depth, track_visible: paired tracks for the Track2View conditioner (see
                ``mvtrack.data.PairedTracks``): (B, V, F, N, 2) positions at the sample's resolution, (B, V, F, N)
                depths and visibility; view ``track_source`` holds the source positions. Ignored without a
                conditioner; without tracks the conditioner is skipped (camera-only behaviour).
            track_source_frame: (B, V, F, N) long, the source frame each track's colour is read from in each view
                and frame (static points, ``PairedTracks.source_frame``); None: the same frame. track_weight:
                (B, V, F, N) how much each track counts in the pixel path (``PairedTracks.weight``); None: 1.
            track_splat: (B, V, F, C + 1, h, w) the pixel path's splat (colour in the sample's space, coverage) made
                by the caller instead of from ``sample``'s source frames (``TrackConditioner.forward``); None: made
                by the conditioner.
            epipolar: the ``epipolar_mask`` of these cameras, for a model with epipolar attention (ignored by
                others); without it the cross-view modules are skipped and masked layers attend fully.

        Returns:
            ``MultiViewTransformerOutput`` with sample (B, V, F, C, h, w).
        """
        wan = self.wan
        B, V, F, C, h, w = sample.shape
        _, ph, pw = self.patch_size
        if timestep.shape != (B, V, F):
            raise ValueError(f"timestep: expected (B, V, F) = {(B, V, F)}, got {tuple(timestep.shape)}")
        if camera.shape[:3] != (B, V, F) or camera.shape[-2:] != (h, w):
            raise ValueError(f"camera: expected {(B, V, F)} + (C, {h}, {w}), got {tuple(camera.shape)}")
        if h % ph or w % pw:
            raise ValueError(f"sample: height and width must be multiples of the patch {ph}x{pw}, got {h}x{w}")
        self.check_positions(V * F, h, w)
        tokens_per_frame = (h // ph) * (w // pw)

        # 1. Patch & position embedding (views follow one another along the frame axis, as in ReCamMaster)
        x = rearrange(sample, "b v f c h w -> b c (v f) h w")
        rotary_emb = wan.rope(x)
        x = wan.patch_embedding(x)  # (B, D, V*F, h', w')
        x = rearrange(x, "b d f h w -> b (f h w) d").contiguous()  # (B, L, D)
        cam = self.camera_encoder(rearrange(camera.to(x.dtype), "b v f c h w -> b c (v f) h w"))  # (B, L, D)
        tracks = splat = None
        if self.conditioner is not None and track_xy is not None:  # condition (B, L, D), splat (B, V, F, C+1, h, w)
            tracks, splat = self.conditioner(x, sample, track_xy, track_depth, track_visible, track_source,
                                             track_source_frame, track_weight, track_splat)

        # 2. Timestep (per view and frame, broadcast to its tokens) and context embeddings
        if encoder_hidden_states is None:
            encoder_hidden_states = self.null_context.expand(B, -1, -1)
        temb, timestep_proj, context, _ = wan.condition_embedder(
            timestep.reshape(-1), encoder_hidden_states.to(x.dtype), None, timestep_seq_len=V * F
        )  # temb (B, V*F, D), timestep_proj (B, V*F, 6D)
        temb = repeat(temb, "b f d -> b (f n) d", n=tokens_per_frame)  # (B, L, D)
        timestep_proj = repeat(timestep_proj, "b f (k d) -> b (f n) k d", n=tokens_per_frame, k=6)  # (B, L, 6, D)

        # 3. Transformer blocks, each preceded by its zero-initialised camera projection (and CVD's cross-view
        # attention after chosen blocks, or its mask inside them)
        cvd = self._epipolar_config
        masked = set(cvd["blocks"]) if cvd is not None and self.cross_view is None else set()  # processor mode
        if cvd is not None:
            if epipolar is not None and (epipolar.views, epipolar.frames, epipolar.tokens) != (V, F, tokens_per_frame):
                raise ValueError(f"epipolar: a mask for {epipolar.views} views, {epipolar.frames} frames and "
                                 f"{epipolar.tokens} tokens per frame, not {V}, {F}, {tokens_per_frame}")
            if epipolar is None:
                warnings.warn("epipolar: this model has epipolar attention but was given no mask "
                              "(model.epipolar_mask); it runs without it", stacklevel=2)
        for i, (block, proj) in enumerate(zip(wan.blocks, self.camera_encoder.block_proj)):
            x = x + proj(cam)
            if tracks is not None and (added := self.conditioner.project(i, tracks)) is not None:
                x = x + added
            run = partial(_masked_block, block, epipolar) if i in masked else block
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                x = self._gradient_checkpointing_func(run, x, context, timestep_proj, rotary_emb)
            else:
                x = run(x, context, timestep_proj, rotary_emb)
            if self.cross_view is not None and epipolar is not None and str(i) in self.cross_view:  # CVD
                module = self.cross_view[str(i)]
                if torch.is_grad_enabled() and self.gradient_checkpointing:  # else ~25 bytes per token x D each
                    x = x + self._gradient_checkpointing_func(module, x, epipolar)
                else:
                    x = x + module(x, epipolar)
            if self.refiner is not None and i == self.config.refiner_block:  # Track4Gen
                frames = rearrange(x, "b (f h w) d -> (b f) d h w", f=V * F, h=h // ph, w=w // pw)
                frames, self.refined = self.refiner(frames)
                x = rearrange(frames, "(b f) d h w -> b (f h w) d", b=B)

        # 4. Output norm, projection & unpatchify
        shift, scale = (wan.scale_shift_table.unsqueeze(0) + temb.unsqueeze(2)).chunk(2, dim=2)
        x = (wan.norm_out(x.float()) * (1 + scale.squeeze(2)) + shift.squeeze(2)).type_as(x)
        x = wan.proj_out(x)  # (B, L, p_h*p_w*C)
        out = rearrange(
            x, "b (v f h w) (ph pw c) -> b v f c (h ph) (w pw)", v=V, f=F, h=h // ph, w=w // pw, ph=ph, pw=pw
        )
        skip = splat is not None and self.conditioner.skip_gate is not None
        if self.config.prediction_type == "sample":  # x_0 -> velocity, in float32
            if skip:  # Track2View's gated geometric skip acts on the clean-frame estimate of generated frames
                out = self.conditioner.apply_skip(out, splat, timestep > 0)
            sigma = (timestep.float() / 1000).clamp_min(self.config.min_sigma)[..., None, None, None]
            out = ((sample.float() - out.float()) / sigma).to(sample.dtype)
        elif skip:  # velocity -> x_0 = x_t - sigma v, skip, back; frames at sigma 0 are observed and unchanged
            sigma = (timestep.float() / 1000)[..., None, None, None]
            x0 = self.conditioner.apply_skip(sample.float() - sigma * out.float(), splat, timestep > 0)
            out = torch.where(sigma > 0, (sample.float() - x0) / sigma.clamp_min(1e-6), out.float()).to(sample.dtype)
        if not return_dict:
            return (out,)
        return MultiViewTransformerOutput(sample=out)
