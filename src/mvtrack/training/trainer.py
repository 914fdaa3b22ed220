"""The Accelerate trainer of every method: one loop, the objective of the configured method.

Runs unchanged on one CPU, one GPU or ``accelerate launch`` over several processes: DDP, FSDP2 or DeepSpeed ZeRO
(``configs/accelerate/``; see ``distributed``). bf16 autocast on CUDA, float32 on CPU; gradient accumulation through
``accelerator.accumulate`` and clipping of the prepared parameters; an EMA of the trained parameters that lives where
their shards do; warm-up + cosine LR; atomic checkpoints that every rank writes its shards of, and exact resume, also on
another number of processes (DDP, FSDP2); a progress bar, ``metrics.jsonl`` and optional TensorBoard.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from dataclasses import replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from mvtrack.data import (
    MultiViewClip,
    PairedTracks,
    collate,
    homography_pseudo_views,
    oracle_tracks,
    source_depth_tracks,
)
from mvtrack.data.latents import LatentClip, codec_fingerprint
from mvtrack.data.source_geometry import clip_stereo_tracks, scale_cameras
from mvtrack.models import WanVAECodec, camera_condition
from mvtrack.models.text import has_text_encoder, load_text_encoder
from mvtrack.devices import resolve_device
from mvtrack.outputs import check_output_dir
from mvtrack.tracking import TrackSupervision

from .checkpoint import (
    begin_checkpoint,
    check_resume,
    clean_temporary,
    export_checkpoint,
    find_checkpoint,
    finish_checkpoint,
    is_sharded,
    list_checkpoints,
    load_checkpoint,
    truncate_metrics,
    write_model_config,
)
from .config import TrainConfig
from .data import TrainBatches
from .distributed import check_sharded, configure_deepspeed, make_accelerator, strategy
from .ema import EMA
from .flow import add_noise, flow_loss, sample_observed
from .model import TrainingModule, apply_trainable, build_model, trainable_names, trainable_preset
from .sharded import STATE_DIR, restore_train_state, save_state, train_state


def step_generator(seed: int, step: int, micro: int, rank: int) -> torch.Generator:
    """The generator of one micro-step on one rank: every random draw of training derives from these four."""
    digest = hashlib.blake2b(f"mvtrack-train:{seed}:{step}:{micro}:{rank}".encode(), digest_size=8).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest, "little") & ((1 << 63) - 1))


def lr_lambda(config: TrainConfig):
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "constant":
            return 1.0
        progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


class Trainer:
    """Train ``config.model`` with the rectified-flow objective on generated views.

    Args:
        config: the run; ``config.output_dir`` receives checkpoints, ``metrics.jsonl``, ``config.json`` and, at
            the end, ``final/`` (EMA weights in ``save_pretrained`` layout, loadable by ``load_model``).
        resume: resume from the latest checkpoint in ``output_dir`` if there is one.
    """

    def __init__(self, config: TrainConfig, resume: bool = True):
        self.config = config
        # device strings first, before anything is built: cuda without CUDA is one error naming the key
        render = resolve_device(config.data.render_device, "data.render_device")
        text_device = resolve_device(config.text.device, "text.device")
        cuda = torch.cuda.is_available()
        precision = config.mixed_precision if config.mixed_precision != "auto" else ("bf16" if cuda else "no")
        if config.weight_dtype != "float32" and precision != "bf16":
            raise ValueError(f"weight_dtype: {config.weight_dtype} weights need mixed_precision bf16 (autocast), got "
                             f"{precision!r}" + ("" if cuda else " (auto means no on a CPU)"))
        self.accelerator = make_accelerator(precision, config.grad_accum)
        acc = self.accelerator
        self.strategy = strategy(acc)  # single, ddp, fsdp2 or deepspeed
        self.output_dir = Path(config.output_dir)

        render_device = acc.device if config.data.render_device == "auto" else render
        # monocular clips (one view) train CVD when every sample becomes pseudo-views of its view 0
        self.batches = TrainBatches(config.data, config.batch_size, config.grad_accum, acc.process_index,
                                    acc.num_processes, render_device,
                                    min_views=1 if config.cvd.pseudo_fraction == 1 else None)
        preset = trainable_preset(config)
        with torch.random.fork_rng(devices=[]):  # a fresh model's initialisation depends on the seed alone
            torch.manual_seed(config.seed)
            model, self.codec = build_model(config)
            self.supervision = TrackSupervision(config.tracking, model) if config.tracking.enabled else None
        # the prompts' encoder, frozen; None for models without one (they condition on the learned null context) and
        # for cached latents that carry their captions' embeddings (mvtrack encode), which need no encoder
        uses_text = Path(config.model).is_dir() and has_text_encoder(config.model)
        self.cached_text = uses_text and self.batches.text
        self.text = load_text_encoder(config.model, torch.bfloat16 if cuda else torch.float32,
                                      config.text.max_length) if uses_text and not self.cached_text else None
        self._check_data(model)
        if self.text is not None:
            if self.text.dim != model.wan.config.text_dim:
                raise ValueError(f"model {config.model}: its text encoder embeds in {self.text.dim} dimensions, the "
                                 f"transformer's cross-attention reads {model.wan.config.text_dim}")
            self.text.to(acc.device if config.text.device == "auto" else text_device)
        # every parameter preset trains (sorted names); partial runs save only these and rebuild the rest
        self.trainable = trainable_names(model, preset, config.also_train, text=uses_text)
        apply_trainable(model, self.trainable, config.weight_dtype)
        self.partial = len(self.trainable) < sum(1 for _ in model.parameters())
        model.train()
        if isinstance(self.codec, WanVAECodec):  # frozen; encodes each batch on the training device
            self.codec.vae.to(acc.device).eval().requires_grad_(False)
        if config.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        # the tracking head trains with the model: it must be under the prepared module for DDP, FSDP2 and DeepSpeed
        module = TrainingModule(model, self.supervision).to(acc.device)
        self.extra = {"track_head": self.supervision.head} if self.supervision and self.supervision.head else {}
        # new branches learn faster than the backbone they are added to (track2view.lr_scale, cvd.lr_scale)
        params = [p for p in module.parameters() if p.requires_grad]
        scaled = [(m, scale) for m, scale in ((model.conditioner, config.track2view.lr_scale),
                                              (model.cross_view, config.cvd.lr_scale)) if m is not None]
        new = {id(p) for m, _ in scaled for p in m.parameters()}
        groups = [{"params": [p for p in params if id(p) not in new]}]
        groups += [{"params": [p for p in m.parameters() if p.requires_grad], "lr": config.lr * scale}
                   for m, scale in scaled if any(p.requires_grad for p in m.parameters())]
        optimizer = torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config))
        self.start_step = 0
        self.resume_changes: dict = {}  # config keys changed on resume (RESUMABLE ones), recorded in resumes.jsonl
        if acc.is_main_process:
            check_output_dir(self.output_dir, "output_dir")
            clean_temporary(self.output_dir)  # left by a run killed while writing a checkpoint
        acc.wait_for_everyone()
        checkpoint = find_checkpoint(self.output_dir) if resume else None
        earlier = list_checkpoints(self.output_dir)
        if not resume and earlier:
            warnings.warn(f"output_dir {self.output_dir} holds checkpoints up to step {earlier[-1][0]} of an earlier "
                          "run; --no-resume starts at step 0, writes beside them (replacing any of the same step) "
                          "and points latest at its own")
        if self.strategy == "deepspeed":
            configure_deepspeed(acc, config.batch_size, config.grad_accum, config.grad_clip)
        # The scheduler is stepped by hand once per optimizer step; Accelerate would step it once per process.
        self.model, self.optimizer = acc.prepare(module, optimizer)
        check_sharded(acc, self.model)
        # after prepare: the averages are made of (and live beside) the parameters as they are sharded
        self.ema = EMA(self.unwrapped, config.ema_decay, self.trainable)
        self.params = [p for p in self.model.parameters() if p.requires_grad]  # the prepared ones, for clipping
        if checkpoint is not None:
            self.resume_changes = check_resume(checkpoint, config.to_dict())
            self.start_step = self.load(checkpoint)
            acc.print(f"resumed from {checkpoint} at step {self.start_step}")
        self._tensorboard = None

    @property
    def unwrapped(self):
        """The transformer under the prepared module (its parameters are DTensor shards under FSDP2)."""
        return self.accelerator.unwrap_model(self.model).model

    def _keep(self) -> set[str] | None:
        """The transformer names a checkpoint saves: a partial run's trained parameters and buffers; None: all."""
        if not self.partial:
            return None
        return set(self.trainable) | {k for k, _ in self.unwrapped.named_buffers()}

    def losses(self, step: int, micro: int) -> dict[str, torch.Tensor]:
        """The objective of one micro-batch, with its graph: ``total`` (undivided by ``grad_accum``), ``diffusion``
        and each tracking term as weighted in ``total``. ``micro_step`` takes its gradient; a hook that needs the
        terms' own gradients (``training.calibrate``) calls this instead."""
        cfg, acc = self.config, self.accelerator
        clip = self.batches.get(step, micro)
        generator = step_generator(cfg.seed, step, micro, acc.process_index)
        if cfg.cvd.pseudo_fraction > 0:
            clip = self.pseudo_views(clip, generator)
        stereo_tracks = self.unwrapped.conditioner is not None and cfg.track2view.source == "stereo"
        if (self.supervision is not None or (self.unwrapped.conditioner is not None and not stereo_tracks)) \
                and clip.num_tracks == 0:
            raise ValueError(f"data.source {cfg.data.source}: the clips carry no tracks, which "
                             f"{'tracking' if self.supervision is not None else 'track2view'} trains on; write them into "
                             "the shards with `mvtrack prepare-tracks` (or train camera-only: drop the tracking / "
                             "track2view settings)")
        stereo = None
        if stereo_tracks:
            if isinstance(clip, LatentClip):
                raise ValueError(f"data.source {cfg.data.source}: cached latents carry no frames, which "
                                 "track2view.source: stereo estimates its depth from; train on video shards")
            # the geometry of inference; its scene scale applies to the cameras too
            stereo, scale = clip_stereo_tracks(clip, cache=cfg.track2view.cache)
            clip = replace(clip, w2c=scale_cameras(clip.w2c, scale.to(clip.w2c)[:, None, None, None]))
        if isinstance(clip, LatentClip):  # cached by mvtrack encode: no VAE pass
            x0 = clip.latents.to(acc.device, torch.float32)  # (b, V, F, C, h, w)
        else:
            x0 = self.codec.encode(clip.video.to(acc.device))  # (b, V, F, C, h, w)
        B, V, F, _, h, w = x0.shape
        frames = self.codec.camera_frames(clip.num_frames)
        camera = camera_condition(clip.w2c[:, :, frames], clip.K[:, :, frames], clip.size, (h, w)).to(acc.device)
        observed = sample_observed(cfg.tasks, B, V, F, generator)
        x_t, timestep, target = add_noise(x0, observed, cfg.flow_shift, generator)
        tracks = {}
        if self.unwrapped.conditioner is not None:
            tracks = self.paired_tracks(clip, observed, generator, stereo).to(acc.device).model_inputs()
        coincident = "homography" if cfg.cvd.pseudo_fraction > 0 else None  # pseudo-views share their centre
        epipolar = self.unwrapped.epipolar_mask(clip.w2c[:, :, frames].to(acc.device), clip.K[:, :, frames].to(
            acc.device), clip.size, (h, w), coincident=coincident)
        context = self.prompt_embeds(clip, generator) if self.text is not None or self.cached_text else None
        supervised = {}
        if self.supervision is not None:
            gt, visible = self.model_tracks(clip)
            supervised = {"tracks": gt.to(acc.device), "visible": visible.to(acc.device), "size": (h, w),
                          "generator": generator}
        with acc.autocast():
            pred, track = self.model(x_t, timestep, camera, context, epipolar=epipolar, conditioning=tracks,
                                     **supervised)
        loss = flow_loss(pred, target, observed, timestep if cfg.loss_space == "sample" else None)
        terms = {"total": loss, "diffusion": loss}
        if track:
            terms["total"] = loss + track.pop("total")
            terms.update(track)
        return terms

    def micro_step(self, step: int, micro: int) -> tuple[torch.Tensor, dict]:
        """Forward + backward of one micro-batch; returns the (undivided) total loss and its parts."""
        terms = self.losses(step, micro)
        total = terms.pop("total")
        parts = {k: v.detach() for k, v in terms.items()}
        if self.strategy == "deepspeed":  # the engine steps inside the last backward: check before it
            self._check_finite(step, [(total.detach(), parts)], 0.0)
        self.accelerator.backward(total)  # divided by grad_accum there (DeepSpeed: in the engine)
        return total.detach(), parts

    def captions(self, clip: MultiViewClip, generator: torch.Generator) -> list[str]:
        """Each sample's prompt: its clip's ``meta["caption"]``, else ``text.default_caption`` (every synthetic clip);
        the empty prompt for a ``text.dropout`` share, drawn from the step's generator (exact resume)."""
        cfg = self.config.text
        B = clip.video.shape[0]
        metas = clip.meta if isinstance(clip.meta, list) else [clip.meta] * B
        captions = [m.get("caption") if isinstance(m, dict) and isinstance(m.get("caption"), str) else None
                    for m in metas]
        dropped = (torch.rand(B, generator=generator) < cfg.dropout).tolist()
        return ["" if drop else (c if c is not None else cfg.default_caption) for c, drop in zip(captions, dropped)]

    def prompt_embeds(self, clip: MultiViewClip | LatentClip, generator: torch.Generator) -> torch.Tensor:
        """(B, text.max_length, text_dim) UMT5 embeddings of the batch's captions (each prompt encoded once, cached), or
        of the cached latents' embeddings (their caption's, or the empty prompt's for the same ``text.dropout`` draw),
        zero-padded as ``WanPipeline`` pads them."""
        if not self.cached_text:
            return self.text.encode(self.captions(clip, generator), device=self.accelerator.device)
        cfg, B = self.config.text, clip.latents.shape[0]
        dropped = torch.rand(B, generator=generator) < cfg.dropout  # the draw captions() makes
        out = torch.zeros(B, cfg.max_length, clip.text.shape[-1],
                          dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
        for b in range(B):
            rows = (clip.text_empty if dropped[b] else clip.text)[b, : cfg.max_length]
            out[b, : rows.shape[0]] = rows.to(out.dtype)
        return out.to(self.accelerator.device)

    def _check_data(self, model) -> None:
        """Refuse data the run cannot train on, before any step: cached latents of another VAE or for CVD's
        pseudo-views (they warp frames), cached text of another width."""
        if not self.batches.latents:
            return
        meta = self.batches.peek().meta
        source = self.config.data.source
        if not isinstance(self.codec, WanVAECodec):
            raise ValueError(f"data.source {source}: holds cached VAE latents, but model {self.config.model} works in "
                             "pixels; train a Wan root's model on them, or on the video shards")
        if meta.get("latents") != codec_fingerprint(self.codec):
            raise ValueError(f"data.source {source}: its latents were encoded by another VAE ({meta.get('latents')}) "
                             f"than model {self.config.model}'s; encode them again with `mvtrack encode`")
        if self.config.cvd.pseudo_fraction > 0:
            raise ValueError(f"data.source {source}: cvd.pseudo_fraction warps video frames into pseudo-views, which "
                             "cached latents no longer have; train CVD's hybrid data on the video shards")
        if self.cached_text and self.batches.peek().text.shape[-1] != model.wan.config.text_dim:
            raise ValueError(f"data.source {source}: its text embeddings have {self.batches.peek().text.shape[-1]} "
                             f"dimensions, the transformer's cross-attention reads {model.wan.config.text_dim}")

    def model_tracks(self, clip: MultiViewClip) -> tuple[torch.Tensor, torch.Tensor]:
        """The clip's tracks on the model's input grid: (B, V, F, N, 2) and (B, V, F, N). Pixel models: as they are.
        Latent models (Wan VAE): latent frame k holds video frame ``codec.camera_frames`` (0, then 4k: the last of
        the 4 frames it encodes, whose camera it is given too) and a latent cell covers 8x8 pixels, so positions
        are ``(x + 0.5) / 8 - 0.5`` (cell centres stay centres)."""
        frames = self.codec.camera_frames(clip.num_frames)
        scale = 1 / self.codec.spatial_factor
        return (clip.tracks[:, :, frames] + 0.5) * scale - 0.5, clip.visible[:, :, frames]

    def pseudo_views(self, clip: MultiViewClip, generator: torch.Generator) -> MultiViewClip:
        """CVD's hybrid data: each sample, with probability ``cvd.pseudo_fraction``, becomes view 0 and homography
        pseudo-views of it (exact cameras sharing its centre); the others stay real multi-view clips."""
        cfg = self.config.cvd
        chosen = torch.rand(clip.video.shape[0], generator=generator) < cfg.pseudo_fraction
        if not chosen.any():
            return clip
        clips = clip.unbatch()
        for i in chosen.nonzero()[:, 0].tolist():
            pseudo = homography_pseudo_views(clips[i], self.config.data.views, 0, generator,
                                             max_degrees=cfg.pseudo_degrees, max_zoom=cfg.pseudo_zoom)
            clips[i] = pseudo
        # the fields every clip of the batch has, in the real clips' dtypes (the pseudo-views' are exact too)
        shared = set.intersection(*(set(c.tensors()) for c in clips))
        dtypes = {k: v.dtype for k, v in clip.tensors().items()}
        return collate([MultiViewClip(**{k: v.to(dtypes[k]) for k, v in c.tensors().items() if k in shared},
                                      meta=c.meta) for c in clips])

    def paired_tracks(self, clip: MultiViewClip, observed: torch.Tensor, generator: torch.Generator,
                      paired: PairedTracks | None = None) -> PairedTracks:
        """Track2View's training tracks at the model's resolution: view 0's tracks paired with every view, kept
        only for samples whose view 0 is observed (re-rendering), minus ``track2view.dropout`` of them, each
        keeping a random share of its tracks (so that the model learns to use sparse tracks too); shuffled, so that
        the conditioner's ``max_token_tracks`` prefix is a fresh random subset at every step."""
        cfg = self.config.track2view
        if paired is None:
            where = f"data.source {self.config.data.source}: the clips carry no"
            fix = "`mvtrack prepare-tracks --method auto` (known, moving cameras)"
            if cfg.source == "oracle" and clip.tracks3d is None:
                raise ValueError(f"{where} 3D tracks, which track2view.source: oracle pairs with every view; write "
                                 f"them with {fix}, or use track2view.source: stereo (depth from the frames)")
            if cfg.source == "source_depth" and clip.depth is None:
                raise ValueError(f"{where} depth, which track2view.source: source_depth lifts view 0's tracks with; "
                                 f"use track2view.source: stereo (depth from the frames), or oracle on the tracks and "
                                 f"3D points of {fix}")
            paired = oracle_tracks(clip) if cfg.source == "oracle" else source_depth_tracks(clip)
        paired = paired.select(frames=self.codec.camera_frames(clip.num_frames)).scaled(1 / self.codec.spatial_factor)
        B, N = paired.tracks.shape[0], paired.num_tracks
        paired = paired.select(tracks=torch.randperm(N, generator=generator).to(paired.tracks.device))  # any prefix
        use = observed[:, 0].all(-1) & (torch.rand(B, generator=generator) >= cfg.dropout)  # (B,)
        share = cfg.min_fraction + (1 - cfg.min_fraction) * torch.rand(B, 1, generator=generator)
        keep = (torch.rand(B, N, generator=generator) < share) & use[:, None]  # (B, N)
        return replace(paired, visible=paired.visible & keep[:, None, None].to(paired.visible.device))

    def train(self) -> dict:
        """Run to ``config.max_steps``; returns the last logged metrics."""
        cfg, acc = self.config, self.accelerator
        if acc.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # rows logged after the resumed step were computed by the run that is being replaced
            truncate_metrics(self.output_dir / "metrics.jsonl", self.start_step)
            (self.output_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
            if self.resume_changes:
                changed = {k: list(v) for k, v in self.resume_changes.items()}
                with open(self.output_dir / "resumes.jsonl", "a") as f:
                    f.write(json.dumps({"step": self.start_step, "changed": changed, "time": time.time()}) + "\n")
                acc.print(f"resumed with changed settings (recorded in resumes.jsonl): {changed}")
            if cfg.tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                except ImportError as e:
                    raise ImportError("tensorboard: set tensorboard: false or `pip install tensorboard`") from e
                self._tensorboard = SummaryWriter(str(self.output_dir / "tensorboard"))
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.start_step,
            desc="train",
            disable=True if not acc.is_main_process else None,
            dynamic_ncols=True,
        )
        metrics, window, t0 = {}, [], time.perf_counter()
        for step in range(self.start_step, cfg.max_steps):
            for micro in range(cfg.grad_accum):
                with acc.accumulate(self.model):  # gradients synchronised (and DeepSpeed steps) at the last
                    window.append(self.micro_step(step, micro))
            grad_norm = acc.clip_grad_norm_(self.params, cfg.grad_clip)  # DeepSpeed: clipped in its step
            self._check_finite(step, window[-cfg.grad_accum:], grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            self.ema.update(self.unwrapped)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.max_steps:
                loss = acc.reduce(torch.stack([w[0] for w in window]).mean().to(acc.device), reduction="mean").item()
                parts = {
                    f"loss_{k}": acc.reduce(torch.stack([w[1][k] for w in window]).mean().to(acc.device),
                                            reduction="mean").item()
                    for k in window[0][1]
                }
                elapsed = time.perf_counter() - t0
                metrics = {
                    "step": done,
                    "loss": loss,
                    **(parts if len(parts) > 1 else {}),
                    "grad_norm": float(grad_norm),
                    "lr": self.scheduler.get_last_lr()[0],
                    "clips_per_s": len(window) * cfg.batch_size * acc.num_processes / elapsed,
                    "time": time.time(),
                }
                window, t0 = [], time.perf_counter()
                self._log(metrics)
                bar.set_postfix(loss=f"{loss:.4f}")
            bar.update(1)
            if done % cfg.checkpoint_every == 0 or done == cfg.max_steps:
                self.save(done)
        bar.close()
        stats = getattr(self.batches, "stats", None)
        if stats is not None:
            self.batches.close()
            if stats.skipped_samples or stats.corrupt_shards:
                acc.print(f"data: replaced {stats.skipped_samples} corrupt sample(s) by the next and cut "
                          f"{stats.corrupt_shards} truncated shard(s) short among {stats.shards} shard(s) (this rank)")
        if acc.is_main_process:
            self.export(self.output_dir / "final")
        acc.wait_for_everyone()
        if self._tensorboard is not None:
            self._tensorboard.close()
        return metrics

    def _check_finite(self, step: int, window: list, grad_norm) -> None:
        """Stop before a NaN or infinite loss or gradient reaches the weights; name the last good checkpoint."""
        acc = self.accelerator
        losses = torch.stack([w[0].float().reshape(()) for w in window]).to(acc.device)
        grad_norm = 0.0 if grad_norm is None else grad_norm
        bad = (~torch.isfinite(losses)).any() | ~torch.isfinite(torch.as_tensor(grad_norm, device=acc.device).float())
        if acc.num_processes > 1:  # every rank must stop at the same step
            bad = acc.reduce(bad.float(), reduction="sum") > 0
        if not bool(bad):
            return
        good = list_checkpoints(self.output_dir)
        good = [p for s, p in good if s <= step]
        last = f"the last good checkpoint is {good[-1]}" if good else "no checkpoint was written before it"
        # DeepSpeed steps inside the last backward: a finite loss with a non-finite gradient is seen only after it
        applied = self.strategy == "deepspeed" and bool(torch.isfinite(losses).all())
        what = ("DeepSpeed's engine applied the step (it steps inside the last backward), nothing was saved"
                if applied else "the step was not applied and nothing was saved")
        raise FloatingPointError(
            f"training diverged at step {step + 1}: loss {losses.tolist()}, grad norm {float(grad_norm):.4g}; "
            f"{what}; {last} (resume from it with a lower lr, a higher warmup_steps or a smaller grad_clip)"
        )

    def _log(self, metrics: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with open(self.output_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(metrics) + "\n")
        if self._tensorboard is not None:
            for k in ("loss", "grad_norm", "lr", "clips_per_s"):
                self._tensorboard.add_scalar(f"train/{k}", metrics[k], metrics["step"])

    def save(self, step: int) -> None:
        """Write the checkpoint of ``step``: every rank its shards (``sharded``; DeepSpeed: its engine's files),
        the main process the JSON beside them, then an atomic rename."""
        acc = self.accelerator
        acc.wait_for_everyone()
        tmp = self.output_dir / "checkpoints" / f".tmp-step_{step:06d}"
        if acc.is_main_process:
            begin_checkpoint(self.output_dir, step)
        acc.wait_for_everyone()
        extra = {}
        if self.strategy == "deepspeed":
            from .deepspeed import save_deepspeed

            extra = save_deepspeed(tmp, self.model, self.ema, self.unwrapped, acc.process_index)
        else:
            groups, extra["optimizer"] = train_state(self.model, self.optimizer.optimizer, self.ema, self._keep())
            save_state(tmp / STATE_DIR, groups)
        acc.wait_for_everyone()
        if acc.is_main_process:
            write_model_config(tmp, self.unwrapped)
            trainer = {"seed": self.config.seed, "config": self.config.to_dict(), "step": step,
                       "scheduler": self.scheduler.state_dict(), "ema_updates": self.ema.num_updates,
                       "partial": self.partial, "strategy": self.strategy, "processes": acc.num_processes, **extra}
            (tmp / "trainer.json").write_text(json.dumps(trainer, indent=2))
            finish_checkpoint(self.output_dir, step, tmp, self.config.keep_checkpoints)
        acc.wait_for_everyone()

    def load(self, checkpoint: Path) -> int:
        """Restore a checkpoint into the prepared model, optimizer, EMA and scheduler; returns its step.

        Sharded checkpoints load on any number of processes and under DDP, FSDP2 or one process; DeepSpeed's on the
        same number of processes under DeepSpeed; checkpoints written before sharding on DDP or one process."""
        trainer = json.loads((checkpoint / "trainer.json").read_text())
        written = trainer.get("strategy")
        if (written == "deepspeed") != (self.strategy == "deepspeed"):
            raise ValueError(f"resume from {checkpoint}: written under {written or 'DDP'}, this run is {self.strategy}; "
                             "DeepSpeed's checkpoints resume under DeepSpeed only, and only those")
        if self.strategy == "deepspeed":
            from .deepspeed import load_deepspeed

            load_deepspeed(checkpoint, trainer, self.model, self.ema, self.accelerator)
        elif is_sharded(checkpoint):
            restore_train_state(checkpoint / STATE_DIR, trainer["optimizer"], self.model, self.optimizer.optimizer,
                                self.ema, self._keep(), trainer["ema_updates"])
        elif self.strategy == "fsdp2":
            raise ValueError(f"resume from {checkpoint}: a checkpoint written before sharding (model.safetensors) "
                             "resumes on DDP or one process; resume it there once, its next checkpoint is sharded")
        else:
            load_checkpoint(checkpoint, self.unwrapped, self.ema, self.optimizer.optimizer, self.scheduler, self.extra,
                            self.trainable)
        self.scheduler.load_state_dict(trainer["scheduler"])
        return int(trainer["step"])

    def export(self, directory: str | Path) -> Path:
        """Write the latest checkpoint's EMA weights as a model directory (see ``export_checkpoint``)."""
        return export_checkpoint(self.output_dir, directory)
