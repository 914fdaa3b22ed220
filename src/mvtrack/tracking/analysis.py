"""Layer analysis: how well each self-attention layer of a checkpoint already acts as a tracker (MVTrack4Gen's
observation), scored against ground-truth tracks, to choose the layers to supervise."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from mvtrack.data import MultiViewClip
from mvtrack.data.pairs import PAIR_KINDS, sample_pairs
from mvtrack.models import camera_condition

from .capture import QKCapture
from .tokens import TokenGrid, argmax_uv, frame_logits, sample_tokens

PCK_THRESHOLDS = (1, 2, 4)  # tokens
NO_MOTION = -1  # the layer index of the no-motion reference rows


@dataclass
class LayerScore:
    layer: int  # NO_MOTION (-1) for the reference that predicts the source position
    kind: str  # temporal | cross_view | cross_view_time | all
    pck1: float  # share of pairs whose attention argmax lies within 1 / 2 / 4 tokens of the true point
    pck2: float
    pck4: float
    cycle: float  # share whose argmax, attending back, lands within 1 token of the query
    pairs: int


def noised_inputs(clip: MultiViewClip, sigma: float, generator: torch.Generator, device):
    """Model inputs with every frame of a clip noised to ``sigma`` (flow matching: ``(1 - sigma) x + sigma eps``):
    ``(x_t (B, V, F, 3, H, W), timestep (B, V, F), camera (B, V, F, 6, H, W))`` on ``device``."""
    x0 = (clip.video * 2 - 1).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    timestep = torch.full(x0.shape[:3], sigma * 1000, device=device)
    camera = camera_condition(clip.w2c, clip.K, clip.size, clip.size).to(device)
    return (1 - sigma) * x0 + sigma * noise, timestep, camera


@torch.no_grad()
def attention_scores(model, clip: MultiViewClip, layers: list[int] | None = None, sigma: float = 0.5,
                     num_pairs: int = 256, seed: int = 0) -> list[LayerScore]:
    """Score the attention argmax of ``layers`` (default: all) as a tracker on ``clip``'s ground-truth tracks.

    Every frame of every view is noised to ``sigma`` (flow matching: ``(1 - sigma) x + sigma eps``); queries at
    visible points of one (view, frame) attend over the keys of the frame holding the same point elsewhere; the
    argmax (head-averaged logits) is compared with the true position in token units.

    Args:
        model: a pixel-space MultiViewTransformer; clip: (B, V, F, ...) at the model's input size.
    """
    layers = list(range(len(model.wan.blocks))) if layers is None else list(layers)
    B, V, F = clip.video.shape[:3]
    H, W = clip.size
    device = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    x_t, timestep, camera = noised_inputs(clip, sigma, g, device)
    pairs = sample_pairs(clip.tracks, clip.visible, num_pairs, PAIR_KINDS, require_dst_visible=True, generator=g)
    grid = TokenGrid.of(model, V, F, H, W)
    src_f = grid.frame_index(pairs.src_view, pairs.src_time).to(device)
    dst_f = grid.frame_index(pairs.dst_view, pairs.dst_time).to(device)
    src_uv, dst_uv = grid.to_grid(pairs.src_xy.float()).to(device), grid.to_grid(pairs.dst_xy.float()).to(device)
    valid = pairs.valid.to(device)
    kind = pairs.kind.to(device)

    def rows(layer: int, err: torch.Tensor, cycle: torch.Tensor) -> list[LayerScore]:
        out = []
        for name in (*PAIR_KINDS, "all"):
            sel = valid & ((kind == PAIR_KINDS.index(name)) if name != "all" else True)
            n = int(sel.sum())
            pck = [float((err[sel] < t).float().mean()) if n else float("nan") for t in PCK_THRESHOLDS]
            out.append(LayerScore(layer, name, *pck, float(cycle[sel].float().mean()) if n else float("nan"), n))
        return out

    # Reference (layer -1): a "tracker" that predicts no motion, the token of the same position in the other frame.
    # Small camera motion makes it strong; a layer is a tracker only where it beats it.
    scores = rows(NO_MOTION, (src_uv.round() - dst_uv).norm(dim=-1), torch.ones_like(valid))
    with QKCapture(model, layers) as capture:
        model(x_t, timestep, camera)
        for layer in layers:
            q, k = capture.qk(layer)
            q, k = q.float(), k.float()
            found = argmax_uv(frame_logits(sample_tokens(q, grid, src_f, src_uv), k, grid, dst_f), grid)
            back = argmax_uv(frame_logits(sample_tokens(q, grid, dst_f, found), k, grid, src_f), grid)
            scores += rows(layer, (found - dst_uv).norm(dim=-1), (back - src_uv).norm(dim=-1) < 1.0)
    return scores


def merge_scores(batches: list[list[LayerScore]]) -> list[LayerScore]:
    """Pair-weighted means of the scores of several clips or batches."""
    out = []
    for rows in zip(*batches):
        n = sum(r.pairs for r in rows)
        mean = {f: sum(getattr(r, f) * r.pairs for r in rows if r.pairs) / n if n else float("nan")
                for f in ("pck1", "pck2", "pck4", "cycle")}
        out.append(LayerScore(rows[0].layer, rows[0].kind, **mean, pairs=n))
    return out


def plot_scores(scores: list[LayerScore], path, title: str = "") -> None:
    """PCK@2 tokens and cycle consistency per layer, one line per pair kind; dotted: the no-motion reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.4), dpi=100)
    FigureCanvasAgg(fig)
    for i, (field, label) in enumerate((("pck2", "PCK @ 2 tokens"), ("cycle", "cycle consistency"))):
        ax = fig.add_subplot(1, 2, i + 1)
        for j, kind in enumerate((*PAIR_KINDS, "all")):
            rows = [s for s in scores if s.kind == kind and s.layer != NO_MOTION]
            line = ax.plot([r.layer for r in rows], [getattr(r, field) for r in rows], "o-", ms=3,
                           lw=2.2 if kind == "all" else 1.2, label=kind)[0]
            ref = [s for s in scores if s.kind == kind and s.layer == NO_MOTION]
            if ref and field == "pck2":
                ax.axhline(ref[0].pck2, color=line.get_color(), ls=":", lw=1)
        ax.set_xlabel("layer")
        ax.set_ylabel(label)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    fig.axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)


def as_dicts(scores: list[LayerScore]) -> list[dict]:
    return [asdict(s) for s in scores]
