"""Layer analysis: how well each self-attention layer of a checkpoint already acts as a tracker (MVTrack4Gen's
observation), scored against ground-truth tracks, to choose the layers to supervise."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from mvtrack.data import MultiViewClip
from mvtrack.data.pairs import PAIR_KINDS, sample_pairs
from mvtrack.models import camera_condition

from .capture import QKCapture
from .tokens import TokenGrid, argmax_uv, frame_logits, frame_logits_per_head, sample_tokens

PCK_THRESHOLDS = (1, 2, 4)  # tokens
NO_MOTION = -1  # the layer index of the no-motion reference rows
MEAN_HEADS = -1  # the head index of rows scoring the head-averaged logits (the attention's mean over heads)


@dataclass
class LayerScore:
    layer: int  # NO_MOTION (-1) for the reference that predicts the source position
    kind: str  # temporal | cross_view | cross_view_time | all
    pck1: float  # share of pairs whose attention argmax lies within 1 / 2 / 4 tokens of the true point
    pck2: float
    pck4: float
    cycle: float  # share whose argmax, attending back, lands within 1 token of the query
    pairs: int
    head: int = MEAN_HEADS  # the attention head scored alone, or MEAN_HEADS (-1) for the head-averaged logits


def noised_inputs(clip: MultiViewClip, sigma: float, generator: torch.Generator, device):
    """Model inputs with every frame of a clip noised to ``sigma`` (flow matching: ``(1 - sigma) x + sigma eps``):
    ``(x_t (B, V, F, 3, H, W), timestep (B, V, F), camera (B, V, F, 6, H, W))`` on ``device``."""
    x0 = (clip.video * 2 - 1).to(device)
    noise = torch.randn(x0.shape, generator=generator).to(device)
    timestep = torch.full(x0.shape[:3], sigma * 1000, device=device)
    camera = camera_condition(clip.w2c, clip.K, clip.size, clip.size).to(device)
    return (1 - sigma) * x0 + sigma * noise, timestep, camera


def _rows(layer: int, err: torch.Tensor, cycle: torch.Tensor, kind: torch.Tensor, valid: torch.Tensor,
          head: int = MEAN_HEADS) -> list[LayerScore]:
    """One score per pair kind and ``all`` from the errors (B, P) in tokens and cycle hits (B, P) of valid pairs."""
    out = []
    for name in (*PAIR_KINDS, "all"):
        sel = valid & ((kind == PAIR_KINDS.index(name)) if name != "all" else True)
        n = int(sel.sum())
        pck = [float((err[sel] < t).float().mean()) if n else float("nan") for t in PCK_THRESHOLDS]
        out.append(LayerScore(layer, name, *pck, float(cycle[sel].float().mean()) if n else float("nan"), n, head))
    return out


def qk_scores(q: torch.Tensor, k: torch.Tensor, grid: TokenGrid, src_frame: torch.Tensor, src_uv: torch.Tensor,
              dst_frame: torch.Tensor, dst_uv: torch.Tensor, kind: torch.Tensor, valid: torch.Tensor, layer: int,
              per_head: bool = False) -> list[LayerScore]:
    """Score one layer's attention argmax as a tracker on given correspondences: the head-averaged logits, and each
    head's own logits when ``per_head`` (what each head's softmax attends to).

    Args:
        q, k: (B, L, heads, d) the layer's queries and keys; src_frame, dst_frame: (B, P) frame indices; src_uv,
            dst_uv: (B, P, 2) grid coordinates; kind: (B, P) indices into PAIR_KINDS; valid: (B, P) bool.

    Returns:
        rows for MEAN_HEADS, then for heads 0..heads-1 when ``per_head``; each for every pair kind and ``all``.
    """
    query = sample_tokens(q, grid, src_frame, src_uv)  # (B, P, heads, d)
    found = argmax_uv(frame_logits(query, k, grid, dst_frame), grid)
    back = argmax_uv(frame_logits(sample_tokens(q, grid, dst_frame, found), k, grid, src_frame), grid)
    scores = _rows(layer, (found - dst_uv).norm(dim=-1), (back - src_uv).norm(dim=-1) < 1.0, kind, valid)
    if per_head:
        found = argmax_uv(frame_logits_per_head(query, k, grid, dst_frame), grid)  # (B, P, heads, 2)
        for h in range(q.shape[2]):
            hq = sample_tokens(q[:, :, h:h + 1], grid, dst_frame, found[:, :, h])  # the head's query at its match
            back = argmax_uv(frame_logits(hq, k[:, :, h:h + 1], grid, src_frame), grid)
            scores += _rows(layer, (found[:, :, h] - dst_uv).norm(dim=-1), (back - src_uv).norm(dim=-1) < 1.0, kind,
                            valid, h)
    return scores


@torch.no_grad()
def attention_scores(model, clip: MultiViewClip, layers: list[int] | None = None, sigma: float = 0.5,
                     num_pairs: int = 256, seed: int = 0, per_head: bool = False) -> list[LayerScore]:
    """Score the attention argmax of ``layers`` (default: all) as a tracker on ``clip``'s ground-truth tracks.

    Every frame of every view is noised to ``sigma`` (flow matching: ``(1 - sigma) x + sigma eps``); queries at
    visible points of one (view, frame) attend over the keys of the frame holding the same point elsewhere; the
    argmax (head-averaged logits, and each head's own with ``per_head``) is compared with the true position in
    token units (:func:`qk_scores`).

    Args:
        model: a pixel-space MultiViewTransformer; clip: (B, V, F, ...) at the model's input size.
    """
    layers = list(range(len(model.wan.blocks))) if layers is None else list(layers)
    V, F = clip.video.shape[1:3]
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

    # Reference (layer -1): a "tracker" that predicts no motion, the token of the same position in the other frame.
    # Small camera motion makes it strong; a layer is a tracker only where it beats it.
    scores = _rows(NO_MOTION, (src_uv.round() - dst_uv).norm(dim=-1), torch.ones_like(valid), kind, valid)
    with QKCapture(model, layers) as capture:
        model(x_t, timestep, camera)
        for layer in layers:
            q, k = capture.qk(layer)
            scores += qk_scores(q.float(), k.float(), grid, src_f, src_uv, dst_f, dst_uv, kind, valid, layer,
                                per_head)
    return scores


def rank_heads(scores: list[LayerScore], kind: str = "all", field: str = "pck2") -> list[LayerScore]:
    """The per-head rows (of ``kind``) from best to worst by ``field``: the heads that track best come first."""
    rows = [s for s in scores if s.kind == kind and s.head != MEAN_HEADS and s.layer != NO_MOTION]
    return sorted(rows, key=lambda s: (-getattr(s, field), -s.cycle, s.layer, s.head))


def merge_scores(batches: list[list[LayerScore]]) -> list[LayerScore]:
    """Pair-weighted means of the scores of several clips or batches."""
    out = []
    for rows in zip(*batches):
        n = sum(r.pairs for r in rows)
        mean = {f: sum(getattr(r, f) * r.pairs for r in rows if r.pairs) / n if n else float("nan")
                for f in ("pck1", "pck2", "pck4", "cycle")}
        out.append(LayerScore(rows[0].layer, rows[0].kind, **mean, pairs=n, head=rows[0].head))
    return out


def plot_scores(scores: list[LayerScore], path, title: str = "") -> None:
    """PCK@2 tokens and cycle consistency per layer (head-averaged logits), one line per pair kind; dotted: the
    no-motion reference."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = [s for s in scores if s.head == MEAN_HEADS]
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


def plot_head_scores(scores: list[LayerScore], path, title: str = "") -> None:
    """PCK@2 tokens and cycle consistency of every (layer, head) on all pairs as heat maps; the last column is the
    head-averaged logits, and the no-motion reference's PCK@2 is in the title."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [s for s in scores if s.kind == "all" and s.layer != NO_MOTION]
    layers = sorted({s.layer for s in rows})
    heads = sorted({s.head for s in rows if s.head != MEAN_HEADS})
    if not heads:
        raise ValueError("plot_head_scores: no per-head rows (score with per_head=True)")
    columns = [*heads, MEAN_HEADS]
    by = {(s.layer, s.head): s for s in rows}
    ref = next((s.pck2 for s in scores if s.kind == "all" and s.layer == NO_MOTION), float("nan"))
    fig = Figure(figsize=(4 + 0.45 * len(columns), 1.2 + 0.35 * len(layers)), dpi=100)
    FigureCanvasAgg(fig)
    for i, (field, label) in enumerate((("pck2", "PCK @ 2 tokens"), ("cycle", "cycle consistency"))):
        ax = fig.add_subplot(1, 2, i + 1)
        grid = [[getattr(by[(layer, h)], field) if (layer, h) in by else float("nan") for h in columns]
                for layer in layers]
        image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        if len(layers) * len(columns) <= 256:  # values in the cells while they stay legible
            for y, row in enumerate(grid):
                for x, value in enumerate(row):
                    ax.text(x, y, f"{value:.2f}", ha="center", va="center", fontsize=6,
                            color="black" if value > 0.6 else "white")
        ax.set_xticks(range(len(columns)), [str(h) for h in heads] + ["mean"], fontsize=7)
        ax.set_yticks(range(len(layers)), [str(layer) for layer in layers], fontsize=7)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_title(label, fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(f"{title} (no motion: PCK@2 {ref:.3f})".strip(), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def as_dicts(scores: list[LayerScore]) -> list[dict]:
    return [asdict(s) for s in scores]
