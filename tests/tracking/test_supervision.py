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
    """Each step starts every pair from its true position plus a fresh random offset (up to 1.5 tokens each way):
    only the correlation peak says where the point is, so the head must learn to read it (a head whose bias learns a
    constant offset, or that ignores its correlations, stays ~1 token off)."""
    grid = TokenGrid(views=1, frames=2, h=8, w=8, ph=4, pw=4)
    feats, tracks = _coded_scene(grid, num_tracks=10)
    src_f, src_uv, dst_f, dst_uv = _all_pairs(grid, tracks)
    head = TrackHead(num_layers=1, levels=2, radius=2, iters=2)
    query = sample_tokens(feats, grid, src_f, src_uv)
    g = torch.Generator().manual_seed(0)

    def start():
        return dst_uv + (torch.rand(dst_uv.shape, generator=g) * 3 - 1.5)

    init = start()
    estimates, vis = head([query], [feats], grid, dst_f, init)
    assert len(estimates) == 2 and vis.shape == src_f.shape
    assert torch.allclose(estimates[-1], init)  # zero-initialised update: starts at the given estimate
    opt = torch.optim.Adam(head.parameters(), lr=3e-3)
    visible = torch.ones_like(src_f, dtype=torch.bool)
    for _ in range(100):
        estimates, vis = head([query], [feats], grid, dst_f, start())
        huber, bce = track_loss(estimates, vis, dst_uv, visible, visible)
        opt.zero_grad()
        (huber + bce).backward()
        opt.step()
    with torch.no_grad():
        init = start()  # offsets it never saw
        estimates, _ = head([query], [feats], grid, dst_f, init)
    before, after = ((x - dst_uv).norm(dim=-1).mean() for x in (init, estimates[-1]))
    assert before > 0.7 and after < 0.4, (before, after)  # moved each estimate onto its own peak (blind: ~1.0)


def test_tracking_config_errors_are_named():
    with pytest.raises(ValueError, match="tracking.kinds"):
        TrackingConfig(kinds=["sideways"])
    with pytest.raises(ValueError, match="tracking.corr_weight"):
        TrackingConfig(corr_weight=-1)
    with pytest.raises(ValueError, match="has no refiner"):
        TrackSupervision(TrackingConfig(refiner_block=0), build_model("tiny"))
    assert not TrackingConfig().enabled and TrackingConfig(layers=[1]).mvtrack4gen


@pytest.mark.parametrize("head", [False, True])
def test_losses_use_true_correspondences_with_visible_destinations_on_the_tracks_device(monkeypatch, head):
    """The pairs behind ``TrackSupervision.losses`` are the tracks' own correspondences, drawn with visible
    destinations (none wasted by the masks of L_corr and the refiner) but for the eighth of occluded ones that keeps
    the head's visibility BCE fed; the losses come back on the tracks' (the model's) device."""
    from mvtrack.data.pairs import sample_pairs
    from mvtrack.tracking import supervision

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = build_model("tiny").to(device)
    config = TrackingConfig(layers=[0], corr_weight=1.0, track_weight=1.0 if head else 0.0, pairs=64)
    sup = TrackSupervision(config, model).to(device)
    grid = TokenGrid.of(model, 2, 3, 32, 32)
    drawn: list[TrackPairs] = []

    def record(*args, **kwargs) -> TrackPairs:
        drawn.append(sample_pairs(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(supervision, "sample_pairs", record)
    visible = torch.rand(1, 2, 3, 8, generator=torch.Generator().manual_seed(0)) > 0.3  # ~30% occluded
    corr = {}
    for shuffle in (False, True):
        # Q/K on which attending to the same code is attending to the true point (shuffled: odd frames lie)
        feats, tracks = _coded_scene(grid, num_tracks=8, shuffle=shuffle)
        qk = feats.to(device)
        monkeypatch.setattr(sup.capture, "qk", {0: (qk, qk)}.__getitem__)  # layer 0's (queries, keys)
        losses = sup.losses(model, tracks.to(device), visible.to(device), (32, 32), torch.Generator().manual_seed(1))
        assert all(v.device.type == device.type for v in losses.values())
        corr[shuffle] = losses["corr"].item()
        pairs, b = drawn[-1], torch.arange(1)[:, None]
        assert pairs.valid.all() and visible[b, pairs.src_view, pairs.src_time, pairs.track].all()
        torch.testing.assert_close(pairs.src_xy, tracks[b, pairs.src_view, pairs.src_time, pairs.track])
        torch.testing.assert_close(pairs.dst_xy, tracks[b, pairs.dst_view, pairs.dst_time, pairs.track])
        assert torch.equal(pairs.dst_visible, visible[b, pairs.dst_view, pairs.dst_time, pairs.track])
        # every destination visible without the head; with it, 8 of 64 occluded: the BCE sees both classes
        assert (~pairs.dst_visible).sum() == (8 if head else 0)
        if head:
            assert torch.isfinite(losses["track"]) and losses["track"] > 0
    assert corr[False] < 0.05 and corr[True] > 1.0  # the loss follows the pairs, and the pairs follow the tracks


def test_eq3_soft_argmax_on_a_hand_computed_cost_volume():
    """Track4Gen's Eq. 3: the raw similarities within the radius of the argmax, normalised (negative ones at 0)."""
    grid = TokenGrid(views=1, frames=1, h=3, w=3, ph=8, pw=8)
    S = torch.tensor([[0.1, 0.2, 0.0],
                      [0.3, 0.9, -0.5],
                      [0.0, 0.1, 0.6]]).reshape(1, 1, 9)  # row v, column u; peak at (u, v) = (1, 1)
    # radius 1 keeps the cross (1,0) 0.2, (0,1) 0.3, (1,1) 0.9, (2,1) -0.5 -> 0, (1,2) 0.1; total 1.5
    # u = (1*0.2 + 0*0.3 + 1*0.9 + 1*0.1) / 1.5 = 0.8;  v = (0*0.2 + 1*0.3 + 1*0.9 + 2*0.1) / 1.5 = 14/15
    eq3 = soft_argmax_uv(S, grid, radius=1.0, mode="eq3")
    torch.testing.assert_close(eq3, torch.tensor([[[0.8, 14 / 15]]]), rtol=0, atol=1e-6)
    softmax = soft_argmax_uv(S, grid, radius=1.0, temperature=0.1)
    assert (softmax - eq3).abs().max() > 0.05
    # no radius: all 9 (negatives at 0), total 2.2; u = (0.2 + 0.9 + 0.1 + 2*0.6) / 2.2, v = (0.3 + 0.9 + 2*0.7) / 2.2
    torch.testing.assert_close(soft_argmax_uv(S, grid, mode="eq3"), torch.tensor([[[2.4 / 2.2, 2.6 / 2.2]]]))
    # nothing positive in the window: the argmax itself
    torch.testing.assert_close(soft_argmax_uv(-S.abs() - 0.1 * (S == 0.9), grid, radius=1.0, mode="eq3"),
                               torch.tensor([[[2.0, 0.0]]]))
    with pytest.raises(ValueError, match="soft-argmax mode"):
        soft_argmax_uv(S, grid, mode="hard")


def test_refiner_loss_with_eq3_is_small_on_true_correspondences_and_large_on_shuffled_ones():
    grid = TokenGrid(views=2, frames=2, h=6, w=6, ph=8, pw=8)
    feats, tracks = _coded_scene(grid)
    src_f, src_uv, dst_f, dst_uv = _all_pairs(grid, tracks)
    mask = torch.ones_like(src_f, dtype=torch.bool)
    refined = feats[0, :, 0].reshape(grid.views * grid.frames, grid.h, grid.w, -1).permute(0, 3, 1, 2)
    # Eq. 3's weights are linear in the cosine: the noise tokens near the true one (cosine ~ +-1/sqrt(16)) still pull
    # a little, where a softmax at temperature 0.05 would not
    assert refiner_loss(refined, grid, src_f, src_uv, dst_f, dst_uv, mask, radius=2.0, softargmax="eq3") < 0.1
    shuffled, tracks = _coded_scene(grid, shuffle=True)
    refined = shuffled[0, :, 0].reshape(grid.views * grid.frames, grid.h, grid.w, -1).permute(0, 3, 1, 2)
    assert refiner_loss(refined, grid, src_f, src_uv, dst_f, dst_uv, mask, radius=2.0, softargmax="eq3") > 0.5


def test_track4gen_options_are_validated():
    for key in ("refiner_style", "refiner_softargmax", "trainable"):
        with pytest.raises(ValueError, match=f"tracking.{key}: expected one of"):
            TrackingConfig(refiner_block=0, **{key: "sideways"})
    cfg = TrackingConfig(refiner_block=0, refiner_style="paper", refiner_softargmax="eq3", trainable="track4gen")
    assert cfg.track4gen
    with pytest.raises(ValueError, match="refiner style"):
        build_model("tiny", refiner_block=0, refiner_style="sideways")


def _track4gen_tiny(tmp_path, *overrides):
    from pathlib import Path

    from mvtrack.training import TrainConfig

    tiny = Path(__file__).resolve().parents[2] / "configs" / "camera_only_tiny.yaml"
    tracking = ("tracking={refiner_block: 0, refiner_style: paper, refiner_softargmax: eq3, refiner_radius: 3.0, "
                "trainable: track4gen, pairs: 32}")
    return TrainConfig.from_yaml(tiny, [f"output_dir={tmp_path}", "data.num_tracks=32", "log_every=1", tracking,
                                        *overrides])


def test_track4gen_trainable_subset_trains_only_it_and_resumes_exactly(tmp_path):
    """tracking.trainable=track4gen freezes all but every block's self-attention and the refiner (and its zero
    conv); two steps change exactly those; checkpoints and the EMA hold only them (and the buffers), and the export
    rebuilds the frozen ones from the base exactly; a run resumed from step 1 ends bit-identical to an uninterrupted
    one (BatchNorm running statistics included)."""
    from safetensors.torch import load_file

    from mvtrack.models.refiner import track4gen_trainable
    from mvtrack.training import Trainer

    full = Trainer(_track4gen_tiny(tmp_path / "full", "max_steps=2", "checkpoint_every=1"))
    model = full.unwrapped
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == set(track4gen_trainable(model))
    assert trainable == {n for n, _ in model.named_parameters() if ".attn1." in n or n.startswith("refiner.")}
    in_optimizer = {id(p) for group in full.optimizer.param_groups for p in group["params"]}
    assert in_optimizer == {id(p) for n, p in model.named_parameters() if n in trainable}
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    full.train()
    after = model.state_dict()
    changed = {n for n, _ in model.named_parameters() if not torch.equal(before[n], after[n])}
    assert changed == trainable  # all of them move (the refiner's hidden layers once its last conv has)
    assert not torch.equal(before["refiner.refiner.norms.0.running_mean"], after["refiner.refiner.norms.0.running_mean"])
    from mvtrack.training.checkpoint import read_weights

    ema, saved = read_weights(tmp_path / "full" / "checkpoints" / "step_000002")
    assert set(ema) == trainable and set(saved) == trainable | {k for k, _ in model.named_buffers() if k in before}
    final = load_file(tmp_path / "full" / "final" / "diffusion_pytorch_model.safetensors")
    for n, _ in model.named_parameters():
        expected = before[n] if n not in trainable else ema[n]
        assert torch.equal(final[n], expected), n

    Trainer(_track4gen_tiny(tmp_path / "split", "max_steps=1", "checkpoint_every=1")).train()
    resumed = Trainer(_track4gen_tiny(tmp_path / "split", "max_steps=2", "checkpoint_every=1"))
    assert resumed.start_step == 1
    assert {n for n, p in resumed.unwrapped.named_parameters() if p.requires_grad} == trainable
    resumed.train()
    for k, v in resumed.unwrapped.state_dict().items():
        torch.testing.assert_close(v, after[k], rtol=0, atol=0, msg=k)


def test_calibration_gives_a_finite_positive_weight_on_the_tiny_model(tmp_path):
    import math

    from mvtrack.training.calibrate import calibrate_track4gen_weight

    norms = calibrate_track4gen_weight(_track4gen_tiny(tmp_path, "tracking.refiner_softargmax=softmax"), batches=2)
    # the refiner loss reaches the backbone only up to the refined block (block 0): its self-attention
    assert norms.shared and all(n.startswith("wan.blocks.0.attn1.") for n in norms.shared)
    assert len(norms.diffusion) == len(norms.refiner) == 2 and all(g > 0 for g in norms.diffusion + norms.refiner)
    w = norms.weight(0.1)
    assert math.isfinite(w) and w > 0
    assert norms.weight(1.0) == pytest.approx(10 * w)
    assert not list(tmp_path.iterdir())  # writes nothing


def test_pair_head_runs_on_bf16_queries_and_keys():
    """Under CUDA autocast the captured Q/K are bf16 while the head's weights are float32."""
    from mvtrack.tracking.head import TrackHead
    from mvtrack.tracking.tokens import TokenGrid

    grid = TokenGrid(1, 2, 4, 4, 8, 8)
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 3, 2, 8, generator=g).bfloat16()
    k = torch.randn(1, 32, 2, 8, generator=g).bfloat16()
    estimates, vis = TrackHead(1, levels=2, radius=1, iters=2)([q], [k], grid, torch.tensor([[1, 1, 0]]),
                                                                torch.zeros(1, 3, 2))
    assert estimates[-1].dtype == torch.float32 and torch.isfinite(vis).all()
