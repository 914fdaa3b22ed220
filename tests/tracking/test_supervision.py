import pytest
import torch

from mvtrack.data.pairs import TrackPairs
from mvtrack.models import build_model, camera_condition
from mvtrack.models.refiner import Refiner
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.tracking import (
    QKCapture,
    TokenGrid,
    TrackHead,
    TrackingConfig,
    TrackSupervision,
    corr_loss,
    frame_logits,
    refiner_loss,
    sample_tokens,
    soft_argmax_uv,
    soft_labels,
    track_loss,
)


def _inputs(model, B=1, V=2, F=3, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, V, F, 3, size, size, generator=g)
    t = torch.rand(B, V, F, generator=g) * 1000
    cam = torch.randn(B, V, F, 6, size, size, generator=g)
    return x, t, cam


def test_capture_leaves_outputs_bit_identical_and_restores_processors():
    model = build_model("tiny").eval()
    x, t, cam = _inputs(model)
    original = [type(b.attn1.processor) for b in model.wan.blocks]
    with torch.no_grad():
        before = model(x, t, cam).sample
        with QKCapture(model, [0, 1]) as capture:
            during = model(x, t, cam).sample
            q, k = capture.qk(1)
        after = model(x, t, cam).sample
    assert torch.equal(before, during) and torch.equal(before, after)
    heads, d = model.wan.config.num_attention_heads, model.wan.config.attention_head_dim
    assert q.shape == k.shape == (1, 2 * 3 * 8 * 8, heads, d)  # tiny: 4x4 patches on 32x32
    assert [type(b.attn1.processor) for b in model.wan.blocks] == original
    with pytest.raises(ValueError, match=r"layers: expected indices in \[0, 2\)"):
        QKCapture(model, [2])


def test_token_grid_geometry():
    grid = TokenGrid(views=2, frames=3, h=4, w=5, ph=8, pw=8)
    xy = torch.tensor([[3.5, 3.5], [11.5, 27.5], [0.0, 0.0]])
    assert torch.allclose(grid.to_grid(xy), torch.tensor([[0.0, 0.0], [1.0, 3.0], [-0.4375, -0.4375]]))
    assert torch.allclose(grid.to_pixels(grid.to_grid(xy)), xy)
    x = torch.arange(2 * 120, dtype=torch.float32).view(2, 120, 1)  # feature = flat index (120 tokens per clip)
    frame = torch.tensor([[4, 0], [1, 5]])
    uv = torch.tensor([[[2.0, 1.0], [0.5, 0.0]], [[4.0, 3.0], [1.0, 2.5]]])  # (column, row)
    got = sample_tokens(x, grid, frame, uv)[..., 0]
    # token (row r, column c) of frame f in clip b: b * 120 + f * 20 + r * 5 + c, interpolated bilinearly
    want = torch.tensor([[4 * 20 + 1 * 5 + 2, 0.5], [120 + 20 + 3 * 5 + 4, 120 + 5 * 20 + 2.5 * 5 + 1]])
    assert torch.allclose(got, want)
    labels = soft_labels(grid, torch.tensor([[[1.0, 2.0], [1.5, 0.25]]]))
    assert torch.allclose(labels.sum(-1), torch.ones(1, 2))
    assert labels[0, 0, 2 * 5 + 1] == 1.0
    assert torch.allclose(labels[0, 1, [1, 2, 6, 7]], torch.tensor([0.375, 0.375, 0.125, 0.125]))


def test_frame_logits_equal_the_dense_attention_logits_of_the_frame():
    g = torch.Generator().manual_seed(0)
    grid = TokenGrid(2, 2, 3, 4, 8, 8)
    q = torch.randn(2, 5, 3, 8, generator=g)
    k = torch.randn(2, 4 * 12, 3, 8, generator=g)
    frame = torch.tensor([[0, 3, 3, 1, 2], [2, 2, 0, 1, 3]])
    logits = frame_logits(q, k, grid, frame)
    for b in range(2):
        for p in range(5):
            keys = k[b, frame[b, p] * 12:(frame[b, p] + 1) * 12]  # (12, heads, d)
            dense = torch.einsum("hd,nhd->hn", q[b, p], keys) / 8**0.5
            assert torch.allclose(logits[b, p], dense.mean(0), atol=1e-6)


def _coded_scene(grid: TokenGrid, num_tracks=6, dim=16, seed=0, shuffle=False):
    """Tracks at token centres (distinct per frame); the features at track n's token in every frame are the code
    of track n (so attention to the same code is attention to the true correspondence), noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    frames = grid.views * grid.frames
    codes = torch.nn.functional.normalize(torch.randn(num_tracks, dim, generator=g), dim=-1) * 6.0
    feats = torch.randn(1, frames * grid.per_frame, 1, dim, generator=g) * 0.1
    tracks = torch.zeros(1, grid.views, grid.frames, num_tracks, 2)
    for f in range(frames):
        tokens = torch.randperm(grid.per_frame, generator=g)[:num_tracks]
        owner = torch.randperm(num_tracks, generator=g) if shuffle and f % 2 else torch.arange(num_tracks)
        feats[0, f * grid.per_frame + tokens, 0] = codes[owner]
        uv = torch.stack([tokens % grid.w, tokens // grid.w], -1).float()
        tracks[0, f // grid.frames, f % grid.frames] = grid.to_pixels(uv)
    return feats, tracks


def _all_pairs(grid: TokenGrid, tracks: torch.Tensor):
    """Every (source frame, destination frame != source, track) correspondence as flat tensors."""
    frames, N = grid.views * grid.frames, tracks.shape[3]
    src, dst, n = torch.meshgrid(torch.arange(frames), torch.arange(frames), torch.arange(N), indexing="ij")
    keep = src != dst
    src, dst, n = src[keep][None], dst[keep][None], n[keep][None]
    flat = tracks[0].reshape(frames, N, 2)
    return src, grid.to_grid(flat[src[0], n[0]])[None], dst, grid.to_grid(flat[dst[0], n[0]])[None]


@pytest.mark.parametrize("shuffle", [False, True])
def test_losses_vanish_on_true_correspondences_and_grow_on_shuffled_ones(shuffle):
    grid = TokenGrid(views=2, frames=2, h=6, w=6, ph=8, pw=8)
    feats, tracks = _coded_scene(grid, shuffle=shuffle)
    src_f, src_uv, dst_f, dst_uv = _all_pairs(grid, tracks)
    mask = torch.ones_like(src_f, dtype=torch.bool)
    query = sample_tokens(feats, grid, src_f, src_uv)
    logits = frame_logits(query, feats, grid, dst_f)
    corr = corr_loss(logits, soft_labels(grid, dst_uv), mask)
    huber, _ = track_loss([soft_argmax_uv(logits, grid)], torch.zeros_like(mask, dtype=torch.float), dst_uv,
                          mask, mask)
    refined = feats[0, :, 0].reshape(grid.views * grid.frames, grid.h, grid.w, -1).permute(0, 3, 1, 2)
    ref = refiner_loss(refined, grid, src_f, src_uv, dst_f, dst_uv, mask, temperature=0.05)
    if not shuffle:
        assert corr < 0.01 and huber < 0.01 and ref < 0.01
    else:  # odd frames hold the codes of other tracks: half of the pairs point at the wrong token
        assert corr > 2.0 and huber > 0.5 and ref > 0.5


def test_corr_loss_gradients_reach_the_supervised_layer_and_everything_upstream():
    model = build_model("tiny")
    sup = TrackSupervision(TrackingConfig(layers=[0], track_weight=0.0, pairs=32), model)
    clip = render_clips(SynthConfig(views=2, frames=3, height=32, width=32, num_tracks=32), [clip_seed(0, 0)])
    camera = camera_condition(clip.w2c, clip.K, (32, 32), (32, 32))
    model(clip.video * 2 - 1, torch.full((1, 2, 3), 500.0), camera)
    losses = sup.losses(model, clip.tracks, clip.visible, (32, 32), torch.Generator().manual_seed(0))
    assert set(losses) == {"corr", "total"} and losses["corr"] > 0
    losses["total"].backward()
    grad = {n: (p.grad.abs().sum().item() if p.grad is not None else 0.0) for n, p in model.named_parameters()}
    attn = "wan.blocks.0.attn1."
    assert grad[attn + "to_q.weight"] > 0 and grad[attn + "to_k.weight"] > 0
    assert grad[attn + "to_v.weight"] == 0 and grad[attn + "to_out.0.weight"] == 0  # do not shape Q/K of layer 0
    for upstream in ("wan.patch_embedding.weight", "camera_encoder.block_proj.0.weight", "wan.blocks.0.norm1.weight"
                     if "wan.blocks.0.norm1.weight" in grad else "wan.blocks.0.scale_shift_table",
                     "wan.condition_embedder.time_embedder.linear_1.weight"):
        assert grad[upstream] > 0, upstream
    assert all(v == 0 for n, v in grad.items() if n.startswith("wan.blocks.1."))  # downstream of the loss
    sup.clear(model)
    assert sup.capture.processors[0].query is None


def test_refiner_starts_as_identity_with_zero_feedback():
    h = torch.randn(3, 32, 4, 5)
    assert torch.equal(Refiner(32)(h), h)
    torch.manual_seed(0)
    plain = build_model("tiny").eval()
    refined = build_model("tiny", refiner_block=1).eval()
    refined.load_state_dict(plain.state_dict(), strict=False)
    x, t, cam = _inputs(plain)
    with torch.no_grad():
        assert torch.equal(plain(x, t, cam).sample, refined(x, t, cam).sample)
    assert refined.refined.shape == (2 * 3, 32, 8, 8)
    plain.add_refiner(0)  # added to a built model: outputs unchanged too
    with torch.no_grad():
        assert torch.allclose(plain(x, t, cam).sample, refined(x, t, cam).sample)
    with pytest.raises(ValueError, match="already refines block 0"):
        plain.add_refiner(1)


def test_refiner_trains_only_from_its_tracking_loss():
    model = build_model("tiny", refiner_block=0)
    x, t, cam = _inputs(model)
    model(x, t, cam).sample.square().mean().backward()  # a stand-in for the diffusion loss
    refiner = dict(model.refiner.refiner.named_parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in refiner.values())  # stop-gradient
    assert model.refiner.zero_conv.weight.grad.abs().sum() > 0  # the feedback itself learns
    model.zero_grad()
    grid = TokenGrid.of(model, 2, 3, 32, 32)
    src_f, dst_f = torch.tensor([[0, 1]]), torch.tensor([[3, 4]])
    uv = torch.tensor([[[2.0, 3.0], [5.0, 1.0]]])
    model(x, t, cam)
    refiner_loss(model.refined, grid, src_f, uv, dst_f, uv + 0.7, torch.ones(1, 2, dtype=torch.bool)).backward()
    assert refiner["convs.2.weight"].grad.abs().sum() > 0


def test_track_head_follows_a_forced_correspondence_and_is_trainable():
    grid = TokenGrid(views=1, frames=2, h=8, w=8, ph=4, pw=4)
    feats, tracks = _coded_scene(grid, num_tracks=10)
    src_f, src_uv, dst_f, dst_uv = _all_pairs(grid, tracks)
    head = TrackHead(num_layers=1, levels=2, radius=2, iters=2)
    query = sample_tokens(feats, grid, src_f, src_uv)
    estimates, vis = head([query], [feats], grid, dst_f, dst_uv + 0.8)
    assert len(estimates) == 2 and vis.shape == src_f.shape
    assert torch.allclose(estimates[-1], dst_uv + 0.8)  # zero-initialised update: starts at the given estimate
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    visible = torch.ones_like(src_f, dtype=torch.bool)
    for _ in range(150):
        estimates, vis = head([query], [feats], grid, dst_f, dst_uv + 0.8)
        huber, bce = track_loss(estimates, vis, dst_uv, visible, visible)
        opt.zero_grad()
        (huber + bce).backward()
        opt.step()
    assert (estimates[-1] - dst_uv).norm(dim=-1).mean() < 0.3  # learned to move the estimate onto the peak


def test_tracking_config_errors_are_named():
    with pytest.raises(ValueError, match="tracking.kinds"):
        TrackingConfig(kinds=["sideways"])
    with pytest.raises(ValueError, match="tracking.corr_weight"):
        TrackingConfig(corr_weight=-1)
    with pytest.raises(ValueError, match="has no refiner"):
        TrackSupervision(TrackingConfig(refiner_block=0), build_model("tiny"))
    assert not TrackingConfig().enabled and TrackingConfig(layers=[1]).mvtrack4gen


def test_pairs_move_to_the_tracks_device():
    pairs = TrackPairs(*(torch.zeros(1, 2) for _ in range(10)))
    moved = TrackPairs(**{k: v.to("cpu") for k, v in vars(pairs).items()})
    assert moved.track.device.type == "cpu"
