"""MultiViewPipeline: camera-controlled multi-view video generation with any observed/generated layout."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import DiffusionPipeline, FlowMatchEulerDiscreteScheduler
from diffusers.utils import BaseOutput

from mvtrack.defaults import SAMPLING_STEPS
from mvtrack.data import PairedTracks
from mvtrack.models import MultiViewTransformer, PixelCodec, WanVAECodec, camera_condition, load_model
from mvtrack.models.pretrained import read_model_meta
from mvtrack.models.text import TextEncoder, load_text_encoder

LAYOUTS = ("rerender", "i2v", "joint")
# diffusers' WanPipeline default: Wan2.1 is sampled with classifier-free guidance
WAN_GUIDANCE_SCALE = 5.0


def view_groups(observed: torch.Tensor, views_per_group: int | None) -> list[list[int]]:
    """CVD's collaborative inference: the view subsets the model sees together at each step.

    Views with any observed frame (a re-rendering source, an image-to-video first frame) join every group; the others
    are generated, ``views_per_group`` at a time, in every combination (C(N, k) forwards per step for N generated
    views), and each generated view's velocity
    is the mean over the groups it is in. None, or N <= k: one group of all views (joint attention).

    Args:
        observed: (B, V, F) bool; views_per_group: generated views per group, or None.

    Returns:
        groups: lists of view indices, ascending.
    """
    V = observed.shape[1]
    fixed = [v for v in range(V) if bool(observed[:, v].any())]
    generated = [v for v in range(V) if v not in fixed]
    if views_per_group is not None and views_per_group < 1:
        raise ValueError(f"views_per_group: expected >= 1 or None (all views jointly), got {views_per_group}")
    if views_per_group is None or len(generated) <= views_per_group:
        return [list(range(V))]
    return [sorted(fixed + list(c)) for c in itertools.combinations(generated, views_per_group)]


def observed_layout(layout: str, batch: int, views: int, frames: int) -> torch.Tensor:
    """(B, V, T) bool for a named layout: rerender = view 0 observed, i2v = frame 0 of view 0, joint = none."""
    if layout not in LAYOUTS:
        raise ValueError(f"observed: expected a (B, V, T) bool tensor or one of {LAYOUTS}, got {layout!r}")
    observed = torch.zeros(batch, views, frames, dtype=torch.bool)
    if layout == "rerender":
        if views < 2:
            raise ValueError("observed='rerender' needs at least 2 views (view 0 is the source)")
        observed[:, 0] = True
    elif layout == "i2v":
        observed[:, 0, 0] = True
    return observed


@dataclass
class MultiViewPipelineOutput(BaseOutput):
    """video: (B, V, T, 3, H, W) in [0, 1], observed frames included."""

    video: torch.Tensor


class MultiViewPipeline(DiffusionPipeline):
    """Generate the unobserved frames of V views, each following its own camera trajectory.

    Args:
        transformer: a ``MultiViewTransformer``.
        scheduler: a diffusers flow-matching scheduler (``FlowMatchEulerDiscreteScheduler``; Wan's
            ``UniPCMultistepScheduler`` with flow prediction also works).
        vae: ``AutoencoderKLWan`` for latent-space models, None for pixel space.
        text_encoder, tokenizer: Wan2.1's UMT5 encoder and tokenizer (``transformers``), for prompts; None for
            mvtrack's text-free models (they condition on a learned null context).
        default_prompt: the prompt used when none is given (``from_model`` sets the caption the model was trained
            with on clips without one, ``mvtrack.json`` ``text.default_caption``; else the empty prompt).
    """

    model_cpu_offload_seq = "text_encoder->transformer->vae"

    def __init__(self, transformer: MultiViewTransformer, scheduler, vae=None, text_encoder=None, tokenizer=None,
                 default_prompt: str = ""):
        super().__init__()
        self.register_modules(transformer=transformer, scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                              tokenizer=tokenizer)
        if (text_encoder is None) != (tokenizer is None):
            raise ValueError("text_encoder, tokenizer: give both (Wan2.1's UMT5 and its tokenizer) or neither")
        if text_encoder is not None and text_encoder.config.d_model != transformer.wan.config.text_dim:
            raise ValueError(f"text_encoder: embeds prompts in {text_encoder.config.d_model} dimensions, the "
                             f"transformer's cross-attention reads {transformer.wan.config.text_dim}")
        self.default_prompt = default_prompt
        self._text: TextEncoder | None = None

    @property
    def codec(self) -> PixelCodec | WanVAECodec:
        return WanVAECodec(self.vae) if self.vae is not None else PixelCodec()

    @property
    def takes_source_splat(self) -> bool:
        """Whether ``source_splat`` is read: a pixel-space model whose Track2View conditioner has a pixel path."""
        cond = self.transformer.conditioner
        return self.vae is None and cond is not None and cond.use_pixels

    @property
    def text(self) -> TextEncoder | None:
        """The prompt encoder (with its per-prompt cache), None without a text encoder."""
        if self.text_encoder is None:
            return None
        if self._text is None or self._text.encoder is not self.text_encoder:
            self._text = TextEncoder(self.tokenizer, self.text_encoder)
        return self._text

    @classmethod
    def from_model(cls, spec: str | Path, torch_dtype: torch.dtype | None = None, shift: float | None = None,
                   device: str | torch.device | None = None):
        """Build from a preset or local model directory (see ``mvtrack.models.load_model``), on ``device`` (None:
        the CPU) with weights in ``torch_dtype`` (None: as saved; Wan's float32 modules and the VAE stay float32).

        The scheduler is read from ``spec/scheduler`` when present (a Wan2.1 root's UniPC; ``shift`` replaces its
        flow shift, nothing else); otherwise Euler flow matching with ``shift``, by default the ``flow_shift`` the
        model was trained with (``spec/mvtrack.json``), else 1. ``spec/text_encoder`` and ``spec/tokenizer``, when
        present, give the pipeline prompts.
        """
        model, codec = load_model(spec, torch_dtype)
        text = load_text_encoder(spec, torch_dtype or torch.float32) if Path(spec).is_dir() else None
        scheduler = None
        scheduler_dir = Path(spec) / "scheduler"
        if (scheduler_dir / "scheduler_config.json").is_file():
            import diffusers

            name = json.loads((scheduler_dir / "scheduler_config.json").read_text()).get("_class_name")
            if not hasattr(diffusers, str(name)):
                raise ValueError(f"{scheduler_dir}: unknown scheduler class {name!r}")
            scheduler = getattr(diffusers, name).from_pretrained(scheduler_dir)
            if shift is not None:
                key = "flow_shift" if "flow_shift" in scheduler.config else "shift"
                scheduler = type(scheduler).from_config(scheduler.config, **{key: shift})
        meta = read_model_meta(spec)
        if scheduler is None:
            if shift is None:
                shift = meta.get("flow_shift")
            scheduler = FlowMatchEulerDiscreteScheduler(shift=1.0 if shift is None else shift)
        vae = codec.vae if isinstance(codec, WanVAECodec) else None
        default_prompt = (meta.get("text") or {}).get("default_caption") or ""
        pipe = cls(transformer=model.eval(), scheduler=scheduler, vae=vae,  # eval: a BatchNorm refiner's statistics
                   text_encoder=None if text is None else text.encoder,
                   tokenizer=None if text is None else text.tokenizer, default_prompt=default_prompt)
        # how the model was given its paired tracks in training (mvtrack.json "tracks": source_depth, oracle, or
        # stereo), so that runners give it the same kind (``runners.rerender.rerender_clip``)
        pipe.track_source = meta.get("tracks", "source_depth")
        return pipe if device is None else pipe.to(device)

    def encode_prompt(
        self, prompt: str | list[str] | None, negative_prompt: str | list[str] | None, guidance: bool, batch: int,
        device, dtype, prompt_embeds: torch.Tensor | None = None, negative_prompt_embeds: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The text conditions of one call, as ``WanPipeline.encode_prompt`` makes them: (B, S, D) prompt embeddings
        (None: the model's null context) and, with ``guidance``, the negative ones (the empty prompt by default).
        """
        text = self.text
        if prompt is not None and prompt_embeds is not None:
            raise ValueError("prompt, prompt_embeds: give one of them, not both")
        if negative_prompt is not None and negative_prompt_embeds is not None:
            raise ValueError("negative_prompt, negative_prompt_embeds: give one of them, not both")
        if text is None and (prompt is not None or negative_prompt is not None):
            raise ValueError("prompt: this model has no text encoder (a Wan2.1 root's text_encoder/ and tokenizer/); "
                             "it conditions on a learned null context and takes no prompt")

        def as_list(p, name):
            p = [p] * batch if isinstance(p, str) else list(p)
            if len(p) != batch:
                raise ValueError(f"{name}: expected one prompt or {batch} (one per clip), got {len(p)}")
            return p

        if prompt_embeds is None and text is not None:
            prompt_embeds = text.encode(as_list(self.default_prompt if prompt is None else prompt, "prompt"))
        if guidance and negative_prompt_embeds is None:
            if text is None:
                raise ValueError("guidance_scale: classifier-free guidance needs a text encoder (or prompt_embeds and "
                                 "negative_prompt_embeds); this model has none, use guidance_scale 1")
            negative_prompt_embeds = text.encode(as_list("" if negative_prompt is None else negative_prompt,
                                                         "negative_prompt"))
        for name, e in (("prompt_embeds", prompt_embeds), ("negative_prompt_embeds", negative_prompt_embeds)):
            if e is not None and (e.dim() != 3 or e.shape[0] != batch
                                  or e.shape[2] != self.transformer.wan.config.text_dim):
                raise ValueError(f"{name}: expected ({batch}, S, {self.transformer.wan.config.text_dim}), got "
                                 f"{tuple(e.shape)}")
        return (None if prompt_embeds is None else prompt_embeds.to(device, dtype),
                None if negative_prompt_embeds is None else negative_prompt_embeds.to(device, dtype))

    def check_inputs(self, video, w2c, K, observed, height, width, num_inference_steps):
        if w2c.dim() != 5 or w2c.shape[-2:] != (4, 4):
            raise ValueError(f"w2c: expected (B, V, T, 4, 4), got {tuple(w2c.shape)}")
        B, V, T = w2c.shape[:3]
        if min(B, V, T) < 1:
            raise ValueError(f"w2c: expected at least one clip, view and frame, got {tuple(w2c.shape)}")
        if height < 1 or width < 1:
            raise ValueError(f"height, width: expected positive sizes, got {height} x {width}")
        if K.shape != (B, V, T, 3, 3):
            raise ValueError(f"K: expected {(B, V, T, 3, 3)}, got {tuple(K.shape)}")
        if observed.shape != (B, V, T) or observed.dtype != torch.bool:
            raise ValueError(
                f"observed: expected a bool tensor of shape {(B, V, T)}, got {observed.dtype} {tuple(observed.shape)}"
            )
        if observed.any():
            if video is None:
                raise ValueError("video: observed frames need pixels; pass video (B, V, T, 3, H, W) in [0, 1]")
            if video.shape != (B, V, T, 3, height, width):
                raise ValueError(f"video: expected {(B, V, T, 3, height, width)}, got {tuple(video.shape)}")
            seen = video[observed.to(video.device)]
            if not torch.isfinite(seen).all():
                raise ValueError("video: observed frames contain NaN or infinite values")
            if seen.min() < 0 or seen.max() > 1:
                raise ValueError(f"video: expected values in [0, 1], got [{seen.min():.3f}, {seen.max():.3f}]")
        multiple = self.codec.spatial_factor * self.transformer.patch_size[1]
        if height % multiple or width % multiple:
            raise ValueError(f"height, width: expected multiples of {multiple} for this model, got {height} x {width}")
        self.codec.check_frames(T)
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps: expected >= 1, got {num_inference_steps}")

    def predict(self, sample, timestep, camera, context, negative, guidance_scale: float, inputs: dict) -> torch.Tensor:
        """The velocity of one step, guided as ``WanPipeline`` guides: the conditional prediction, and with
        ``negative`` embeddings ``uncond + guidance_scale * (cond - uncond)`` (combined in float32), at the true sigma
        (``MultiViewTransformer.sampling_velocity``: the last step lands on the model's x_0)."""
        velocity = self.transformer(sample, timestep, camera, context, **inputs).sample
        if negative is not None:
            uncond = self.transformer(sample, timestep, camera, negative, **inputs).sample.float()
            velocity = (uncond + guidance_scale * (velocity.float() - uncond)).to(velocity.dtype)
        return self.transformer.sampling_velocity(velocity, timestep)

    def prepare_latents(self, shape, generator, device, dtype) -> torch.Tensor:
        """Unit Gaussian noise of ``shape`` (B, V, F, C, h, w), drawn on the CPU so results match across devices."""
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(device, dtype)

    @torch.no_grad()
    def __call__(
        self,
        w2c: torch.Tensor,
        K: torch.Tensor,
        video: torch.Tensor | None = None,
        observed: torch.Tensor | str = "rerender",
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = SAMPLING_STEPS,
        generator: torch.Generator | None = None,
        prompt: str | list[str] | None = None,
        negative_prompt: str | list[str] | None = None,
        guidance_scale: float | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        tracks: PairedTracks | None = None,
        source_splat: torch.Tensor | None = None,
        views_per_group: int | None = None,
        return_dict: bool = True,
    ) -> MultiViewPipelineOutput | tuple:
        """Generate.

        Args:
            w2c: (B, V, T, 4, 4) OpenCV world-to-camera of every view and frame (observed or not).
            K: (B, V, T, 3, 3) pixel intrinsics for a ``height x width`` frame.
            video: (B, V, T, 3, H, W) in [0, 1]; only observed frames are read (others may be zeros).
            observed: (B, V, T) bool, or ``rerender`` / ``i2v`` / ``joint``.
            height, width: frame size; taken from ``video`` when omitted.
            num_inference_steps: Euler steps of the flow ODE.
            generator: CPU ``torch.Generator`` for the initial noise.
            prompt: the text (one, or one per clip) of a model with a text encoder (Wan2.1); None: the
                pipeline's ``default_prompt``. Models without one condition on their learned null context.
            negative_prompt: what classifier-free guidance steers away from (default: the empty prompt).
            guidance_scale: classifier-free guidance as in diffusers' ``WanPipeline``: each step runs the model with
                the prompt and with the negative prompt and takes ``uncond + guidance_scale * (cond - uncond)``;
                1 (or less) runs it once, unguided. None: 5 (Wan's) with a text encoder, 1 without.
            prompt_embeds, negative_prompt_embeds: (B, S, text_dim) embeddings instead of prompts.
            tracks: paired tracks (``mvtrack.data.PairedTracks``, pixels of a ``height x width`` frame, all T
                frames) for a model with a Track2View conditioner; ignored by other models. Without them a
                conditioned model runs camera-only.
            source_splat: (B, V, T, 4, H, W) the source view carried along ``tracks`` into every view, colour in
                [0, 1] and coverage (``data.source_splat``: splatted from the source video at a finer resolution),
                for the pixel path of a pixel model (``takes_source_splat``) instead of its own splat of ``video``;
                ignored by other models and without ``tracks``.
            views_per_group: generate the unobserved views this many at a time, every combination, averaging each
                view's predictions at every step (CVD's collaborative inference of N views with a model trained on
                fewer; ``view_groups``); None (default): all views in one joint attention. Memory is that of one
                group; time grows with the number of groups.

        Returns:
            ``MultiViewPipelineOutput`` with video (B, V, T, 3, H, W) in [0, 1].
        """
        B, V, T = w2c.shape[:3]
        if height is None or width is None:
            if video is None:
                raise ValueError("height, width: required when no video is given")
            height, width = video.shape[-2:]
        if isinstance(observed, str):
            observed = observed_layout(observed, B, V, T)
        self.check_inputs(video, w2c, K, observed, height, width, num_inference_steps)
        if tracks is not None and tracks.tracks.shape[:3] != (B, V, T):
            raise ValueError(f"tracks: expected paired tracks of {(B, V, T)} views and frames, got "
                             f"{tuple(tracks.tracks.shape[:3])}")
        if source_splat is not None and source_splat.shape != (B, V, T, 4, height, width):
            raise ValueError(f"source_splat: expected {(B, V, T, 4, height, width)}, got {tuple(source_splat.shape)}")
        if tracks is not None and not observed[:, tracks.source].all():
            raise ValueError(f"tracks: the source view {tracks.source} must be observed in every frame (tracks carry "
                             "its content to the other views; a Track2View model is trained for re-rendering)")
        device, dtype, codec = self._execution_device, self.transformer.dtype, self.codec
        if guidance_scale is None:
            guidance_scale = WAN_GUIDANCE_SCALE if self.text is not None else 1.0
        if not math.isfinite(guidance_scale):
            raise ValueError(f"guidance_scale: expected a finite number, got {guidance_scale}")
        guided = guidance_scale > 1.0
        context, negative = self.encode_prompt(prompt, negative_prompt, guided, B, device, dtype, prompt_embeds,
                                               negative_prompt_embeds)
        negative = negative if guided else None

        # 1. Cameras -> Plücker rays at the model's resolution, one per model frame
        frames = codec.camera_frames(T)
        h, w = height // codec.spatial_factor, width // codec.spatial_factor
        camera = camera_condition(w2c[:, :, frames], K[:, :, frames], (height, width), (h, w)).to(device, dtype)
        # a model frame is observed only if every video frame it encodes is
        obs = torch.stack(
            [observed[:, :, max(0, f - codec.temporal_factor + 1) : f + 1].all(-1) for f in frames.tolist()], -1
        )
        obs = obs.to(device)  # (B, V, F)
        # the views of a group follow one another along the frame axis of one RoPE table: refused before anything is
        # encoded, rather than deep inside diffusers
        self.transformer.check_positions(len(frames) * max(map(len, view_groups(obs, views_per_group))), h, w)

        # 2. Observed frames encoded; everything else starts from noise
        F = len(frames)
        shape = (B, V, F, codec.channels, h, w)
        clean = (
            codec.encode(video.to(device)).to(dtype) if obs.any() else torch.zeros(shape, device=device, dtype=dtype)
        )
        latents = self.prepare_latents(shape, generator, device, dtype)
        mask = obs[..., None, None, None]
        if tracks is not None and self.transformer.conditioner is not None:
            tracks = tracks.select(frames=frames).scaled(1 / codec.spatial_factor).to(device)
        else:
            tracks = None
        given = None  # the splat in model space: colour encoded where a track lands, 0 elsewhere (as the model's own)
        if source_splat is not None and tracks is not None and self.takes_source_splat:
            colour, coverage = source_splat[:, :, frames, :3].float(), source_splat[:, :, frames, 3:].float()
            given = torch.cat([torch.where(coverage > 0, codec.encode(colour), 0.0), coverage], 3).to(device)
        # per group of views: its inputs to the model (the epipolar masks of its cameras are built once here)
        groups = view_groups(obs, views_per_group)
        extra = []
        for g in groups:
            cams = (w2c[:, g][:, :, frames].to(device), K[:, g][:, :, frames].to(device))  # (B, |g|, F, ...)
            inputs = {"epipolar": self.transformer.epipolar_mask(*cams, (height, width), (h, w))}
            if tracks is not None:
                inputs.update(tracks.select_views(g).model_inputs())
            if given is not None:
                inputs["track_splat"] = given[:, g]
            extra.append(inputs)
        count = torch.zeros(V, device=device)
        for g in groups:
            count[g] += 1

        # 3. Denoising loop: observed frames are fed clean with timestep 0 at every step
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            model_input = torch.where(mask, clean, latents)
            timestep = torch.where(obs, torch.zeros((), device=device), t.to(device).float())  # (B, V, F)
            if len(groups) == 1:
                velocity = self.predict(model_input, timestep, camera, context, negative, guidance_scale, extra[0])
            else:  # collaborative: each view's velocity averaged over the groups it is in
                velocity = torch.zeros_like(latents, dtype=torch.float32)
                for g, inputs in zip(groups, extra):
                    velocity[:, g] += self.predict(model_input[:, g], timestep[:, g], camera[:, g], context, negative,
                                                   guidance_scale, inputs).float()
                velocity = velocity / count[None, :, None, None, None, None]
            latents = self.scheduler.step(velocity.float(), t, latents.float(), return_dict=False)[0].to(dtype)

        # 4. Decode; observed frames are returned as given
        out = codec.decode(torch.where(mask, clean, latents)).float()  # (B, V, T, 3, H, W)
        if video is not None and observed.any():
            out = torch.where(observed.to(device)[..., None, None, None], video.to(device, out.dtype), out)
        self.maybe_free_model_hooks()
        if not return_dict:
            return (out,)
        return MultiViewPipelineOutput(video=out)
