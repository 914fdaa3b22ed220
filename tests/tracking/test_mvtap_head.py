"""The MV-TAP-style multi-view tracking head (tracking.head: mvtap) and per-head L_corr (tracking.corr_heads)."""

from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mvtrack.models import build_model
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.tracking import (
    MultiViewTrackHead,
    TokenGrid,
    TrackingConfig,
    TrackSupervision,
    corr_loss,
    corr_loss_per_head,
    frame_logits,
    frame_logits_per_head,
    sample_tokens,
    soft_labels,
    track_loss,
)
from mvtrack.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]


def _one_hot_scene(grid: TokenGrid, clips=1, tracks=1, heads=2, dim=8, noise=0.0, seed=0, amplitude=3.0):
    """Q = K: one-hot codes (track n: e_n, in every head) at each track's token of every frame, ``noise``
    elsewhere, so the only correlation peak of a query is its track's token. Returns (qk (B, L, heads, dim),
    tracks (B, T, N, 2) in grid units, distinct tokens per frame)."""
    g = torch.Generator().manual_seed(seed)
    T = grid.views * grid.frames
    qk = torch.randn(clips, T * grid.per_frame, heads, dim, generator=g) * noise
    uv = torch.zeros(clips, T, tracks, 2)
    for b in range(clips):
        for t in range(T):
            tokens = torch.randperm(grid.per_frame, generator=g)[:tracks]
            qk[b, t * grid.per_frame + tokens] = torch.eye(dim)[:tracks, None, :] * amplitude
            uv[b, t] = torch.stack([tokens % grid.w, tokens // grid.w], -1).float()
    return qk, uv


def _queries(uv: torch.Tensor, num: int, seed=0):
    """``num`` random (frame, track) queries per clip: src_frame (B, P), src_uv (B, P, 2), targets (B, P, T, 2)."""
    g = torch.Generator().manual_seed(seed)
    B, T, N, _ = uv.shape
    frame = torch.randint(T, (B, num), generator=g)
    track = torch.randint(N, (B, num), generator=g)
    b = torch.arange(B)[:, None]
    return frame, uv[b, frame, track], uv[b, :, track]  # uv[b, :, track]: (B, P, T, 2)


@pytest.mark.parametrize("query_radius", [0, 1])
def test_correlation_peaks_at_the_true_position_at_every_level_and_view(query_radius):
    grid = TokenGrid(views=2, frames=3, h=8, w=8, ph=4, pw=4)
    qk, uv = _one_hot_scene(grid, clips=2)
    frame, src_uv, target = _queries(uv, 6)
    head = MultiViewTrackHead(num_layers=1, levels=4, radius=3, query_radius=query_radius)
    volumes = head.volumes([qk], [qk], grid, frame, src_uv)
    assert [v is None for v in volumes[0]] == [False] * 4  # 8x8 tokens: 8, 4, 2 and 1 per side
    centre_q, centre_w = len(head.query_offsets) // 2, len(head.offsets) // 2
    windows = head.correlations(volumes, target)  # (B, P, T, layers, levels, S_q, S_w)
    assert windows.shape == (2, 6, 6, 1, 4, (2 * query_radius + 1) ** 2, 49)
    peak = windows[..., centre_q, :].argmax(-1)  # every clip, query, view and frame, level
    assert (peak == centre_w).all() and (windows[..., centre_q, centre_w] > 0).all()
    # an estimate off by (2, -1) tokens sees the peak at offset (-2, 1) of its level-0 window
    off = torch.tensor([2.0, -1.0])
    peak = head.correlations(volumes, target + off)[:, :, :, 0, 0, centre_q].argmax(-1)
    want = ((head.offsets == -off).all(-1)).nonzero().item()
    assert (peak == want).all()
    # a 4x4 grid pools to 4, 2, 1: the fourth level is zero padding
    small = TokenGrid(views=2, frames=3, h=4, w=4, ph=4, pw=4)
    qk, uv = _one_hot_scene(small)
    frame, src_uv, target = _queries(uv, 3)
    volumes = head.volumes([qk], [qk], small, frame, src_uv)
    assert volumes[0][3] is None
    windows = head.correlations(volumes, target)
    assert (windows[:, :, :, 0, 3] == 0).all() and (windows[:, :, :, 0, 2, centre_q].argmax(-1) == centre_w).all()


def test_shapes_initial_estimates_and_gradients():
    grid = TokenGrid(views=2, frames=3, h=8, w=8, ph=4, pw=4)
    qk, uv = _one_hot_scene(grid, clips=2, tracks=3, noise=0.1, amplitude=6.0)  # a sharp attention peak
    q = qk.clone().requires_grad_(True)
    k = qk.clone().requires_grad_(True)
    frame, src_uv, target = _queries(uv, 5)
    torch.manual_seed(0)
    head = MultiViewTrackHead(num_layers=2, levels=3, iters=3, dim=64, depth=1, heads=2)
    estimates, vis = head([q, q], [k, k], grid, frame, src_uv)
    assert len(estimates) == 3 and estimates[-1].shape == (2, 5, 6, 2) and vis.shape == (2, 5, 6)
    own = torch.arange(6) == frame[..., None]
    assert torch.equal(estimates[-1][own], src_uv.reshape(-1, 2))  # zero update: starts at the query itself ...
    assert (estimates[-1] - target).norm(dim=-1).mean() < 0.5  # ... and at the attention's soft-argmax elsewhere
    init = target + 1.5
    estimates, _ = head([q, q], [k, k], grid, frame, src_uv, init)
    assert torch.equal(estimates[-1], init)
    opt = torch.optim.SGD(head.parameters(), lr=0.1)
    for _ in range(2):  # the zero-initialised update layer passes gradients on after its first step
        opt.zero_grad()
        q.grad = k.grad = None
        estimates, vis = head([q, q], [k, k], grid, frame, src_uv, init)
        huber, bce = track_loss(estimates, vis, target, torch.ones_like(vis, dtype=torch.bool),
                                torch.ones_like(vis, dtype=torch.bool))
        (huber + bce).backward()
        opt.step()
    silent = [n for n, p in head.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not silent, silent
    assert q.grad.abs().sum() > 0 and k.grad.abs().sum() > 0  # L_track shapes the backbone's Q/K
    with pytest.raises(ValueError, match="init_uv: expected"):
        head([q, q], [k, k], grid, frame, src_uv, init[:, :, :4])
    with pytest.raises(ValueError, match="expected Q and K of 2 layers"):
        head([q], [k], grid, frame, src_uv)


class _LargestTensor(TorchDispatchMode):
    """Records the largest tensor any operator returns (forward and backward)."""

    def __init__(self):
        super().__init__()
        self.numel, self.op = 0, None

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and t.numel() > self.numel:
                self.numel, self.op = t.numel(), str(func)
        return out


def test_no_full_attention_map_is_formed():
    """Every tensor of the head's forward and backward stays below L x L (L = all tokens of the clip); a dense
    ``q @ k.T`` over the clip's tokens trips the same check."""
    grid = TokenGrid(views=2, frames=4, h=8, w=8, ph=4, pw=4)
    L = 8 * 64
    qk, uv = _one_hot_scene(grid, tracks=4, heads=2, dim=16, noise=0.1)
    q, k = qk.clone().requires_grad_(True), qk.clone().requires_grad_(True)
    frame, src_uv, _ = _queries(uv, 4)
    head = MultiViewTrackHead(num_layers=1, levels=4, radius=3, iters=2, dim=32, depth=1, heads=2)
    with _LargestTensor() as seen:
        estimates, vis = head([q], [k], grid, frame, src_uv)
        (estimates[-1].square().sum() + vis.sum()).backward()
    assert seen.numel < L * L // 4, (seen.numel, seen.op)
    # per layer, the correlation volume is P x T x tokens per frame numbers: the bound of the docstring
    assert head.volumes([q], [k], grid, frame, src_uv)[0][0].numel() == 4 * 8 * 64
    with _LargestTensor() as dense:
        torch.einsum("blhd,bmhd->blm", q, k)
    assert dense.numel >= L * L


def test_head_learns_to_move_onto_the_correlation_peak():
    """A few steps of the head alone on the one-hot task: its estimates end far closer to the truth than the
    noisy initial estimates it starts from (fresh scenes for the evaluation)."""
    grid = TokenGrid(views=2, frames=3, h=8, w=8, ph=4, pw=4)
    torch.manual_seed(0)
    head = MultiViewTrackHead(num_layers=1, levels=3, radius=3, iters=3, dim=64, depth=1, heads=2)
    opt = torch.optim.Adam(head.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(1)

    def batch(seed):
        qk, uv = _one_hot_scene(grid, clips=4, tracks=3, noise=0.05, seed=seed)
        frame, src_uv, target = _queries(uv, 6, seed=seed)
        init = target + (torch.rand(target.shape, generator=g) * 5 - 2.5)  # up to 2.5 tokens off per axis
        return qk, frame, src_uv, target, init

    ones = torch.ones(4, 6, 6, dtype=torch.bool)
    for step in range(120):
        qk, frame, src_uv, target, init = batch(step)
        estimates, vis = head([qk], [qk], grid, frame, src_uv, init)
        huber, bce = track_loss(estimates, vis, target, ones, ones)
        opt.zero_grad()
        (huber + bce).backward()
        opt.step()
    qk, frame, src_uv, target, init = batch(1000)
    with torch.no_grad():
        estimates, vis = head([qk], [qk], grid, frame, src_uv, init)
    before = (init - target).norm(dim=-1).mean()
    after = (estimates[-1] - target).norm(dim=-1).mean()
    assert after < 0.5 * before, (before, after)
    assert (vis > 0).float().mean() > 0.9  # every point is visible in this task


def _coded_two_heads(grid: TokenGrid, num_tracks=6, dim=16, seed=0):
    """Head 0 holds per-track codes at the tracks' tokens (it attends to the true correspondence); head 1 holds
    independent noise (it attends anywhere). Returns qk (1, L, 2, dim) and tracks (T, N, 2) in grid units."""
    g = torch.Generator().manual_seed(seed)
    T = grid.views * grid.frames
    codes = torch.nn.functional.normalize(torch.randn(num_tracks, dim, generator=g), dim=-1) * 6.0
    qk = torch.randn(1, T * grid.per_frame, 2, dim, generator=g) * 0.1
    qk[0, :, 1] = torch.randn(T * grid.per_frame, dim, generator=g)
    uv = torch.zeros(T, num_tracks, 2)
    for t in range(T):
        tokens = torch.randperm(grid.per_frame, generator=g)[:num_tracks]
        qk[0, t * grid.per_frame + tokens, 0] = codes
        uv[t] = torch.stack([tokens % grid.w, tokens // grid.w], -1).float()
    return qk, uv


def test_per_head_corr_loss_is_not_satisfied_by_one_head():
    grid = TokenGrid(views=2, frames=2, h=6, w=6, ph=8, pw=8)
    qk, uv = _coded_two_heads(grid)
    T, N = uv.shape[:2]
    src, dst, n = (x.reshape(1, -1) for x in torch.meshgrid(torch.arange(T), torch.arange(T), torch.arange(N),
                                                             indexing="ij"))
    keep = src != dst
    src, dst, n = src[keep][None], dst[keep][None], n[keep][None]
    query = sample_tokens(qk, grid, src, uv[src[0], n[0]][None])
    labels = soft_labels(grid, uv[dst[0], n[0]][None])
    mask = torch.ones_like(src, dtype=torch.bool)
    per_head = frame_logits_per_head(query, qk, grid, dst)
    assert per_head.shape == (1, src.shape[1], 2, 36)
    torch.testing.assert_close(per_head.mean(2), frame_logits(query, qk, grid, dst))
    mean = corr_loss(frame_logits(query, qk, grid, dst), labels, mask)
    right, wrong = (corr_loss_per_head(per_head, labels, mask, [h]) for h in (0, 1))
    both = corr_loss_per_head(per_head, labels, mask)
    assert right < 0.05 and wrong > 2.0  # head 0 tracks, head 1 does not
    assert mean < 0.5  # the bug: head-averaged logits let head 0 satisfy L_corr for both
    assert both > mean + 1.0 and torch.isclose(both, (right + wrong) / 2)
    with pytest.raises(ValueError, match=r"heads: expected indices in \[0, 2\)"):
        corr_loss_per_head(per_head, labels, mask, [2])


def test_tracking_config_of_the_mvtap_head_and_corr_heads():
    pair, mvtap = TrackingConfig(layers=[0]), TrackingConfig(layers=[0], head="mvtap")
    assert (pair.head_levels, pair.head_radius, pair.head_iters) == (3, 2, 3)  # unchanged defaults of the pair head
    assert (mvtap.head_levels, mvtap.head_radius, mvtap.head_iters) == (4, 3, 4)
    assert TrackingConfig(corr_heads=(1, 0)).corr_heads == [1, 0]
    for bad, match in (({"head": "cotracker"}, "tracking.head"), ({"corr_heads": "sum"}, "tracking.corr_heads"),
                       ({"corr_heads": [0, 0]}, "tracking.corr_heads"), ({"corr_heads": []}, "tracking.corr_heads"),
                       ({"head_dim": 48}, "tracking.head_dim"), ({"head_depth": 0}, "tracking.head_depth")):
        with pytest.raises(ValueError, match=match):
            TrackingConfig(**bad)
    with pytest.raises(ValueError, match=r"head indices in \[0, 2\)"):
        TrackSupervision(TrackingConfig(layers=[0], corr_heads=[2]), build_model("tiny"))


@pytest.mark.parametrize("corr_heads", ["per_head", [1]])
def test_supervision_with_the_mvtap_head(corr_heads):
    model = build_model("tiny")
    cfg = TrackingConfig(layers=[0, 1], pairs=8, head="mvtap", head_dim=32, head_depth=1, corr_heads=corr_heads)
    sup = TrackSupervision(cfg, model)
    assert isinstance(sup.head, MultiViewTrackHead) and sup.head.levels == 4 and sup.head.radius == 3
    clip = render_clips(SynthConfig(views=2, frames=3, height=32, width=32, num_tracks=16), [clip_seed(0, 0)])
    from mvtrack.models import camera_condition

    camera = camera_condition(clip.w2c, clip.K, (32, 32), (32, 32))
    model(clip.video * 2 - 1, torch.full((1, 2, 3), 500.0), camera)
    losses = sup.losses(model, clip.tracks, clip.visible, (32, 32), torch.Generator().manual_seed(0))
    assert set(losses) == {"corr", "track", "total"} and all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    assert sup.head.out.weight.grad.abs().sum() > 0
    grad = model.wan.blocks[0].attn1.to_q.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    sup.clear(model)


def test_training_with_the_mvtap_head_checkpoints_and_resumes_exactly(tmp_path, train_killed_at):
    spec = ("tracking={layers: [0], corr_weight: 0.5, track_weight: 0.5, pairs: 8, head: mvtap, head_dim: 32, "
            "head_depth: 1, head_iters: 2, corr_heads: [1]}")

    def config(out):
        return TrainConfig.from_yaml(ROOT / "configs" / "camera_only_tiny.yaml", [
            f"output_dir={out}", "log_every=2", "data.num_tracks=16", "max_steps=6", "checkpoint_every=3", spec])

    full = Trainer(config(tmp_path / "full"))
    assert full.config.tracking.corr_heads == [1] and isinstance(full.supervision.head, MultiViewTrackHead)
    full.train()
    from mvtrack.training.sharded import read_full

    assert read_full(tmp_path / "full" / "checkpoints" / "step_000006" / "state", "track_head")
    train_killed_at(Trainer(config(tmp_path / "split")), 4)
    resumed = Trainer(config(tmp_path / "split"))
    assert resumed.start_step == 3
    resumed.train()
    for a, b in ((full.unwrapped, resumed.unwrapped), (full.supervision.head, resumed.supervision.head)):
        sa, sb = a.state_dict(), b.state_dict()
        for key in sa:
            torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


def test_mvtap_head_computes_in_float32_on_bf16_queries_and_keys():
    """Under CUDA autocast the captured Q/K are bf16; sub-token positions need float32 correlations."""
    from mvtrack.tracking.mvtap_head import MultiViewTrackHead
    from mvtrack.tracking.tokens import TokenGrid

    grid = TokenGrid(2, 2, 4, 4, 8, 8)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 64, 2, 8, generator=g).bfloat16()
    k = torch.randn(1, 64, 2, 8, generator=g).bfloat16()
    head = MultiViewTrackHead(1)
    estimates, vis = head([q], [k], grid, torch.tensor([[0, 3]]), torch.tensor([[[1.0, 2.0], [2.5, 0.5]]]))
    assert estimates[-1].dtype == torch.float32 and vis.dtype == torch.float32 and torch.isfinite(vis).all()
