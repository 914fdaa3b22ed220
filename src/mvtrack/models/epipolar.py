"""CVD's epipolar cross-view attention: which tokens of one view may attend to which tokens of another.

A token of view a at frame t attends to view b at frame t only near its epipolar line in b: hard (within ``band``
tokens of the line) or soft (CVD's bias ``-max(d - band, 0) * decay``). Attention within a view is unchanged.
Distances come from the actual cameras of each sample (``geometry.fundamental_matrix``), measured between token
centres in units of one token.

Two ways to use it (``MultiViewTransformer(epipolar=...)``):
- ``module`` (default): a zero-initialised cross-view attention per chosen block, over the V views of one frame at a
  time (CVD's design). It starts as a no-op, so any checkpoint fine-tunes from where it is, and it costs
  ``V * n`` tokens per attention instead of the full ``V * F * n``.
- ``processor``: the backbone's own joint self-attention of the chosen blocks is masked (cross-view keys only near
  the epipolar line of the same frame; ``cross_frames=True`` keeps other frames of other views too). No new
  parameters, but not a no-op on a model trained with full attention.

Masks are built once per camera set (``build_epipolar_mask``). ``backend="sdpa"`` gives
``scaled_dot_product_attention`` dense masks (CPU and CUDA), never above ``DENSE_LIMIT`` bytes (a clear error
instead: at 2 views x 81 frames x 480x832, processor mode's joint mask would be a 4 GiB bool or 8 GiB bf16 bias);
``backend="flex"`` gives FlexAttention block masks that index the per-frame pair mask, compiled on CUDA (FlexAttention
has no CPU backward; not yet run on a GPU). ``auto`` (the models' default) is flex for cameras on CUDA, sdpa
otherwise.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanAttnProcessor
from einops import rearrange
from torch import nn

from mvtrack.config import section
from mvtrack.geometry import apply_homography, camera_centers, epipolar_lines, relative_pose, rotation_homography
from mvtrack.geometry.epipolar import fundamental_matrix, to_homogeneous

from .wan_attention import self_attention_qkv

MODES = ("module", "processor")
COINCIDENT = ("full", "homography")
BACKENDS = ("auto", "sdpa", "flex")
# largest dense mask (bytes) the sdpa backend builds; 1 GiB keeps module mode's per-frame masks at 2 views x 21
# latent frames x 1560 tokens (204 MiB bool) and refuses processor mode's joint mask there (4 GiB)
DENSE_LIMIT = 2**30


def token_centres(size: tuple[int, int], grid: tuple[int, int], device=None) -> torch.Tensor:
    """Pixel coordinates ``(n, 2)`` of the centres of a ``grid = (gh, gw)`` of tokens over an image of ``size =
    (H, W)`` pixels, row-major (the model's token order); the top-left pixel's centre is (0, 0)."""
    (H, W), (gh, gw) = size, grid
    ys = (torch.arange(gh, device=device, dtype=torch.float64) + 0.5) * (H / gh) - 0.5
    xs = (torch.arange(gw, device=device, dtype=torch.float64) + 0.5) * (W / gw) - 0.5
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x, y], -1).reshape(-1, 2)


def coincident_centres(w2c_a: torch.Tensor, w2c_b: torch.Tensor, tol: float = 1e-5) -> torch.Tensor:
    """(...) bool: cameras whose centres coincide (no epipolar geometry; only a homography relates them)."""
    ca, cb = camera_centers(w2c_a), camera_centers(w2c_b)
    return (ca - cb).norm(dim=-1) <= tol * (1 + ca.norm(dim=-1))


def token_epipolar_distances(
    w2c: torch.Tensor, K: torch.Tensor, size: tuple[int, int], grid: tuple[int, int], coincident: str = "homography"
) -> torch.Tensor:
    """Distances between the tokens of every ordered pair of views of one frame, in tokens.

    Args:
        w2c: (B, V, F, 4, 4) world-to-camera of each view and (model) frame; K: (B, V, F, 3, 3) pixel intrinsics of
            a ``size = (H, W)`` image; grid: (gh, gw) tokens per frame.
        coincident: views whose centres coincide have no epipolar lines, but every point maps by the rotation
            homography ``K_b R K_a^-1``: ``homography`` (default) gives the distance to that exact correspondence
            (homography pseudo-views share a centre by construction; so do generated targets at the source's first
            camera); ``full`` gives distance 0 (every key allowed) with a warning. Never NaN.

    Returns:
        d: (B, F, V, V, n, n) float32: ``d[b, f, a, c, i, j]`` is the distance of token j of view c to the epipolar
        line of token i of view a (0 where a == c), divided by the token size in pixels.
    """
    if coincident not in COINCIDENT:
        raise ValueError(f"coincident: expected one of {COINCIDENT}, got {coincident!r}")
    B, V, Fr = w2c.shape[:3]
    if w2c.shape[-2:] != (4, 4) or K.shape != (B, V, Fr, 3, 3):
        raise ValueError(f"w2c, K: expected (B, V, F, 4, 4) and (B, V, F, 3, 3), got {tuple(w2c.shape)}, "
                         f"{tuple(K.shape)}")
    w2c, K = w2c.double(), K.double()
    x = token_centres(size, grid, w2c.device)  # (n, 2)
    n = x.shape[0]
    unit = ((size[0] / grid[0]) * (size[1] / grid[1])) ** 0.5  # one token, in pixels
    # every ordered pair of views of the same frame: (B, F, V, V, ...)
    wa = rearrange(w2c, "b v f i j -> b f v 1 i j").expand(B, Fr, V, V, 4, 4)
    wb = rearrange(w2c, "b v f i j -> b f 1 v i j").expand(B, Fr, V, V, 4, 4)
    ka = rearrange(K, "b v f i j -> b f v 1 i j").expand(B, Fr, V, V, 3, 3)
    kb = rearrange(K, "b v f i j -> b f 1 v i j").expand(B, Fr, V, V, 3, 3)
    lines = epipolar_lines(fundamental_matrix(wa, ka, wb, kb), x.expand(B, Fr, V, V, n, 2))  # (B, F, V, V, n, 3)
    d = (lines.float() @ to_homogeneous(x).float().T).abs()  # (B, F, V, V, n, n): |a x + b y + c|, a^2 + b^2 = 1
    same = coincident_centres(wa, wb)  # (B, F, V, V), True on the diagonal too
    if same.any():
        if coincident == "homography":
            T = relative_pose(wa, wb)
            Hm = rotation_homography(ka, T[..., :3, :3], kb)  # (B, F, V, V, 3, 3)
            xh = apply_homography(Hm, x.expand(B, Fr, V, V, n, 2))  # (B, F, V, V, n, 2)
            dh = torch.cdist(xh.float(), x.float().expand(B, Fr, V, V, n, 2))  # (B, F, V, V, n, n)
            d = torch.where(same[..., None, None], dh, d)
        else:
            off_diagonal = same & ~torch.eye(V, dtype=torch.bool, device=same.device)
            if off_diagonal.any():
                pairs = int(off_diagonal.sum())
                warnings.warn(f"epipolar attention: {pairs} (clip, frame, view, view) pair(s) share a "
                              "camera centre (no epipolar geometry); with coincident=full they get full cross-view "
                              "attention", stacklevel=2)
            d = torch.where(same[..., None, None], torch.zeros_like(d), d)
    eye = torch.eye(V, dtype=torch.bool, device=d.device)[None, None, :, :, None, None]
    d = torch.where(eye, torch.zeros_like(d), d / unit)
    return torch.nan_to_num(d, nan=0.0).float()


@dataclass
class EpipolarMask:
    """The epipolar masks of one camera set, built once (``build_epipolar_mask``) and reused at every step.

    Only the per-frame pair mask is stored; the dense masks that SDPA reads are built on first use and cached, and
    the FlexAttention masks index the pair mask directly (no L x L tensor).

    pair: (B, F, V, V, n, n): ``pair[b, f, a, c, i, j]`` for query token i of view a and key token j of view c at
        frame f; bool (hard band; True on the diagonal blocks a == c) or the soft bias (0 in the band, never -inf).
    cross_frames: in the joint mask, other views' other frames are allowed (else blocked).
    backend: ``sdpa`` (dense masks) or ``flex`` (FlexAttention block masks, CUDA).
    dense_limit: the largest dense mask ``sdpa`` may build, in bytes; a larger one is a ``ValueError`` naming the
        alternatives, never an out-of-memory.
    """

    pair: torch.Tensor
    cross_frames: bool = False
    backend: str = "sdpa"
    dense_limit: int = DENSE_LIMIT
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def views(self) -> int:
        return self.pair.shape[2]

    @property
    def frames(self) -> int:
        return self.pair.shape[1]

    @property
    def tokens(self) -> int:
        return self.pair.shape[-1]

    @property
    def hard(self) -> bool:
        return self.pair.dtype == torch.bool

    def density(self, which: str = "per_frame") -> float:
        """Share of (query, key) pairs allowed (soft: with a finite bias) in the ``per_frame`` or ``joint`` mask."""
        if ("density", which) not in self._cache:
            self._cache["density", which] = self._density(which)
        return self._cache["density", which]

    def full(self, which: str) -> bool:
        """Whether the ``which`` mask allows every pair with no bias (then attention is plain full attention)."""
        return self.hard and self.density(which) == 1.0

    def _density(self, which: str) -> float:
        B, Fr, V = self.pair.shape[:3]
        n = self.tokens
        if which == "per_frame":
            return float(self.pair.sum(dtype=torch.int64)) / self.pair.numel() if self.hard else 1.0
        same_view = B * V * Fr * n * Fr * n  # a query's own view, every frame
        eye = torch.eye(V, dtype=torch.bool, device=self.pair.device)[None, None, :, :, None, None]
        cross = int((self.pair & ~eye).sum(dtype=torch.int64)) if self.hard else B * Fr * V * (V - 1) * n * n
        later = B * V * Fr * n * (V - 1) * (Fr - 1) * n if self.cross_frames else 0
        L = V * Fr * n
        return (same_view + cross + later) / (B * L * L)

    def dense(self, which: str, dtype: torch.dtype | None = None) -> torch.Tensor | None:
        """The dense mask SDPA reads: ``per_frame`` (B*F, 1, V*n, V*n) or ``joint`` (B, 1, L, L), L = V*F*n in the
        model's token order (view, frame, token); bool, or a float bias in ``dtype``; None when all is allowed."""
        key = (which, None if self.hard else dtype)
        if key not in self._cache:
            self._cache[key] = self._build_dense(which, dtype)
        return self._cache[key]

    @property
    def per_frame(self) -> torch.Tensor | None:
        return self.dense("per_frame", None if self.hard else self.pair.dtype)

    @property
    def joint(self) -> torch.Tensor | None:
        return self.dense("joint", None if self.hard else self.pair.dtype)

    def dense_bytes(self, which: str, dtype: torch.dtype | None = None) -> int:
        """Size of the ``which`` dense mask: bool, or a bias in ``dtype`` (default: the pair's)."""
        B, Fr, V = self.pair.shape[:3]
        side = V * self.tokens if which == "per_frame" else V * Fr * self.tokens
        item = 1 if self.hard else (dtype or self.pair.dtype).itemsize
        return B * (Fr if which == "per_frame" else 1) * side * side * item

    def _build_dense(self, which: str, dtype) -> torch.Tensor | None:
        pair = self.pair if self.hard else self.pair.to(dtype)
        B, Fr, V = pair.shape[:3]
        n = self.tokens
        size = self.dense_bytes(which, dtype)
        if size > self.dense_limit and not self.full(which):
            side = V * n if which == "per_frame" else V * Fr * n
            raise ValueError(
                f"epipolar attention: the dense {which.replace('_', '-')} mask of {side} x {side} tokens would take "
                f"{size / 2**30:.1f} GiB (limit {self.dense_limit / 2**30:.1f} GiB); use backend flex on CUDA (what "
                "backend auto picks there), mode module (a per-frame mask of views x tokens per frame), or fewer "
                "frames, views or a smaller size")
        if which == "per_frame":
            if self.full("per_frame"):
                return None
            return rearrange(pair, "b f va vb i j -> (b f) 1 (va i) (vb j)")  # (B*F, 1, V*n, V*n)
        if self.full("joint"):
            return None
        # (B, V, F, n, V, F, n): same view -> allowed; other view -> the pair mask at the same frame
        pair_j = rearrange(pair, "b f va vb i j -> b va f i vb j")[:, :, :, :, :, None, :]  # (B, V, F, n, V, 1, n)
        frame_ok = torch.eye(Fr, dtype=torch.bool, device=pair.device)[None, None, :, None, None, :, None]
        view_eq = torch.eye(V, dtype=torch.bool, device=pair.device)[None, :, None, None, :, None, None]
        if self.hard:
            full = view_eq | torch.where(frame_ok, pair_j, torch.tensor(self.cross_frames, device=pair.device))
        else:
            zero = torch.zeros((), dtype=pair.dtype, device=pair.device)
            other = torch.where(frame_ok, pair_j, zero if self.cross_frames else torch.full_like(zero, float("-inf")))
            full = torch.where(view_eq, zero, other)
        full = full.expand(B, V, Fr, n, V, Fr, n)
        return rearrange(full, "b va fa i vb fb j -> b 1 (va fa i) (vb fb j)")  # (B, 1, L, L)

    def flex(self, which: str):
        """FlexAttention ``(block_mask, score_mod)`` of the ``per_frame`` or ``joint`` mask, built on first use from
        the pair mask by index arithmetic (no dense L x L mask)."""
        if ("flex", which) in self._cache:
            return self._cache["flex", which]
        from torch.nn.attention.flex_attention import create_block_mask

        pair, Fr, n, cross = self.pair, self.frames, self.tokens, self.cross_frames
        allowed = pair if self.hard else torch.isfinite(pair)
        bias = None if self.hard else pair
        if which == "per_frame":
            batch, length = pair.shape[0] * Fr, self.views * n

            def where(b, q, k):  # (batch, frame, query view, key view, query token, key token)
                return b // Fr, b % Fr, q // n, k // n, q % n, k % n

            def mask_mod(b, h, q, k):
                return allowed[where(b, q, k)]

            def score_mod(score, b, h, q, k):
                return score + bias[where(b, q, k)]
        else:
            batch, length = pair.shape[0], self.views * Fr * n

            def parts(b, q, k):
                va, fa, i = q // (Fr * n), (q // n) % Fr, q % n
                vb, fb, j = k // (Fr * n), (k // n) % Fr, k % n
                return va, fa, i, vb, fb, j

            def mask_mod(b, h, q, k):
                va, fa, i, vb, fb, j = parts(b, q, k)
                return (va == vb) | ((fa == fb) & allowed[b, fa, va, vb, i, j]) | ((fa != fb) & cross)

            def score_mod(score, b, h, q, k):
                va, fa, i, vb, fb, j = parts(b, q, k)
                return score + torch.where((va != vb) & (fa == fb), bias[b, fa, va, vb, i, j], 0.0)

        block = create_block_mask(mask_mod, batch, None, length, length, device=pair.device)
        self._cache["flex", which] = (block, None if self.hard else score_mod)
        return self._cache["flex", which]


def pick_backend(backend: str, device: torch.device) -> str:
    """The mask backend ``auto`` means on ``device``: FlexAttention's block masks on CUDA (no dense L x L mask),
    dense SDPA masks elsewhere (FlexAttention has no CPU backward), which refuse sizes past ``DENSE_LIMIT``."""
    if backend not in BACKENDS:
        raise ValueError(f"epipolar.backend: expected one of {BACKENDS}, got {backend!r}")
    if backend != "auto":
        return backend
    return "flex" if torch.device(device).type == "cuda" else "sdpa"


def build_epipolar_mask(
    w2c: torch.Tensor,
    K: torch.Tensor,
    size: tuple[int, int],
    grid: tuple[int, int],
    band: float = 1.5,
    decay: float | None = None,
    cross_frames: bool = False,
    coincident: str = "homography",
    backend: str = "sdpa",
    dtype: torch.dtype = torch.float32,
) -> EpipolarMask:
    """Epipolar attention masks for a batch of camera sets.

    Args:
        w2c, K, size, grid, coincident: see ``token_epipolar_distances`` (one camera per view and model frame).
        band: half-width of the allowed band around each epipolar line, in tokens (inf: everything). Query and key
            are both rounded to token centres, so a band under ~1.2 tokens drops some true correspondences; 1.5
            keeps them all for the cameras in tests/models/test_epipolar.py.
        decay: None for a hard band; else CVD's soft bias ``-max(d - band, 0) * decay`` (per token of distance).
        cross_frames: joint mask (processor mode): let tokens attend to other views at other frames too.
        backend: ``sdpa`` (dense masks) or ``flex`` (FlexAttention block masks; CUDA for training).
        dtype: dtype of a soft bias.

    Returns:
        ``EpipolarMask``.
    """
    if band < 0:
        raise ValueError(f"band: expected >= 0 tokens, got {band}")
    if decay is not None and decay <= 0:
        raise ValueError(f"decay: expected > 0 or None (hard band), got {decay}")
    if backend not in ("sdpa", "flex"):
        raise ValueError(f"backend: expected sdpa or flex, got {backend!r}")
    d = token_epipolar_distances(w2c, K, size, grid, coincident)  # (B, F, V, V, n, n)
    pair = d <= band if decay is None else (-(d - band).clamp_min(0) * decay).to(dtype)  # 0 inside the band
    return EpipolarMask(pair, bool(cross_frames), backend)


def _attention(q, k, v, mask: EpipolarMask, which: str) -> torch.Tensor:
    """Attention of (B', heads, L, D) tensors under ``mask``'s ``which`` mask (all allowed: full attention)."""
    if mask.full(which):
        return F.scaled_dot_product_attention(q, k, v)
    if mask.backend == "flex":
        block, score_mod = mask.flex(which)
        return _compiled_flex(q.device)(q, k, v, block_mask=block, score_mod=score_mod)
    dense = mask.dense(which, q.dtype)  # a soft bias cached in the attention's dtype (bf16 under autocast)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=dense)


_FLEX = None


def _compiled_flex(device: torch.device):
    """``flex_attention``, ``torch.compile``d on first use for CUDA tensors (compiling on import would be a side
    effect; the CPU runs it eagerly, forward only)."""
    global _FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if _FLEX is None:
        _FLEX = torch.compile(flex_attention, dynamic=False)
    return _FLEX


class EpipolarCrossViewAttention(nn.Module):
    """CVD's cross-view attention: the tokens of the V views of one frame attend to each other under the epipolar
    mask (tokens of their own view freely). A zero-initialised output makes it a no-op until trained. Its queries and
    keys carry no position embedding: where a token may look is the mask's job, what it matches is content (and
    the camera embedding the tokens already carry).

    Args:
        dim: token width; heads: attention heads (dim must divide).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"heads: expected a divisor of dim {dim}, got {heads}")
        self.heads = heads
        self.norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.norm_q = nn.RMSNorm(dim // heads, eps=1e-6)
        self.norm_k = nn.RMSNorm(dim // heads, eps=1e-6)
        self.out = nn.Linear(dim, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, mask: EpipolarMask) -> torch.Tensor:
        """x: (B, L, D) tokens in the model's order (view, frame, token); returns the (B, L, D) update to add."""
        V, Fr, n = mask.views, mask.frames, mask.tokens
        h = rearrange(self.norm(x.float()).type_as(x), "b (v f n) d -> (b f) (v n) d", v=V, f=Fr, n=n)
        q, k, v = rearrange(self.qkv(h), "g l (k h e) -> k g h l e", k=3, h=self.heads)  # (B*F, heads, V*n, e)
        q, k = self.norm_q(q), self.norm_k(k)
        out = _attention(q, k, v, mask, "per_frame")  # (B*F, heads, V*n, e)
        out = self.out(rearrange(out, "g h l e -> g l (h e)"))
        return rearrange(out, "(b f) (v n) d -> b (v f n) d", f=Fr, v=V)


class EpipolarAttnProcessor(WanAttnProcessor):
    """Wan self-attention under an epipolar mask of the joint sequence (``processor`` mode). ``mask`` is set by the
    model for the duration of one block call; with no mask (or one that allows everything) it is Wan's own
    attention."""

    def __init__(self):
        super().__init__()
        self.mask: EpipolarMask | None = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        if self.mask is None or self.mask.full("joint"):
            return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        query, key, value = self_attention_qkv(attn, hidden_states, encoder_hidden_states, rotary_emb,
                                               "EpipolarAttnProcessor")  # (B, L, heads, e)
        q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # (B, heads, L, e)
        out = _attention(q, k, v, self.mask, "joint").transpose(1, 2).flatten(2, 3).type_as(query)
        return attn.to_out[1](attn.to_out[0](out))


def check_epipolar_config(config, num_layers: int) -> dict:
    """``MultiViewTransformer(epipolar=...)`` (an ``EpipolarConfig`` or its mapping) checked against a backbone of
    ``num_layers`` blocks: a plain dict of every setting, ``blocks`` resolved (None: every other block) and sorted."""
    from .sections import EpipolarConfig  # sections reads this module's MODES, COINCIDENT, BACKENDS

    out = section(EpipolarConfig, dict(config) if isinstance(config, dict) else config, "epipolar").kwargs()
    blocks = list(range(1, num_layers, 2)) if out["blocks"] is None else out["blocks"]
    if not blocks or any(not 0 <= b < num_layers for b in blocks):
        raise ValueError(f"epipolar.blocks: expected block indices in [0, {num_layers}), got {out['blocks']}")
    out["blocks"] = sorted(set(blocks))
    return out
