import warnings

import pytest
import torch

from mvtrack.geometry import look_at, make_intrinsics, project
from mvtrack.models import MultiViewTransformer, build_model, camera_condition
from mvtrack.models.epipolar import build_epipolar_mask, token_centres, token_epipolar_distances
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


@pytest.fixture(scope="module")
def clip():
    """Two engine views of a static scene at 32x32 (tokens of 4x4 pixels for the tiny model: an 8x8 grid)."""
    config = SynthConfig(views=2, frames=2, height=32, width=32, num_tracks=256, query_view=0, dynamic_prob=0.0)
    return render_clips(config, [clip_seed(3, 0)])


def _nearest_token(xy: torch.Tensor, size, grid) -> torch.Tensor:
    """Row-major index of the token containing pixel xy (..., 2)."""
    (H, W), (gh, gw) = size, grid
    col = ((xy[..., 0] + 0.5) / (W / gw)).floor().clamp(0, gw - 1)
    row = ((xy[..., 1] + 0.5) / (H / gh)).floor().clamp(0, gh - 1)
    return (row * gw + col).long()


def test_allowed_keys_hold_the_true_correspondence_and_exclude_far_tokens(two_cameras, random_points):
    """Points of a real scene seen by two cameras: the token under a point's projection in view 1 is allowed for the
    token under its projection in view 0, and tokens far from that token's epipolar line are not."""
    w2c, K = two_cameras
    size, grid = (96, 128), (12, 16)
    w2c, K = w2c[None, :, None].float(), K[None, :, None].float()  # (1, V=2, F=1, ...)
    mask = build_epipolar_mask(w2c, K, size, grid)  # the default band, 1.5 tokens
    allowed = mask.per_frame[0, 0]  # (V*n, V*n)
    n = grid[0] * grid[1]
    xy, depth = project(random_points.float(), w2c[0, :, 0, None], K[0, :, 0, None])  # (2, P, 2)
    inside = ((xy >= 0) & (xy <= torch.tensor([size[1] - 1, size[0] - 1]))).all(-1).all(0) & (depth > 0).all(0)
    assert inside.sum() > 10
    i = _nearest_token(xy[0, inside], size, grid)
    j = _nearest_token(xy[1, inside], size, grid)
    assert allowed[i, n + j].all()  # view 0 -> view 1
    assert allowed[n + j, i].all()  # view 1 -> view 0
    assert 0.05 < mask.density() < 0.9
    assert allowed[:n, :n].all() and allowed[n:, n:].all()  # within a view: unchanged


def test_keys_off_the_projected_ray_are_blocked_and_keys_on_it_allowed(two_cameras):
    """Independent of the fundamental matrix: the ray through a view-0 token centre, unprojected at many depths and
    projected into view 1, is the epipolar line. Tokens of view 1 within 0.3 tokens of it are allowed; tokens more
    than band + 0.8 tokens (query rounding) from it are blocked. A transposed F (the wrong direction) fails this."""
    from mvtrack.geometry import unproject

    w2c, K = two_cameras
    size, grid = (96, 128), (12, 16)
    w2c, K = w2c[None, :, None].double(), K[None, :, None].double()
    allowed = build_epipolar_mask(w2c, K, size, grid).per_frame[0, 0]
    n, unit = grid[0] * grid[1], 8.0
    centres = token_centres(size, grid)  # (n, 2)
    depths = torch.logspace(-1, 2.5, 400, dtype=torch.float64)
    checked = 0
    for i in range(0, n, 7):
        xy = centres[i].expand(len(depths), 2)
        points = unproject(xy, depths, w2c[0, 0, 0], K[0, 0, 0])  # (D, 3) on the ray
        ray, z = project(points, w2c[0, 1, 0], K[0, 1, 0])  # (D, 2) in view 1
        ray = ray[z > 0]
        if len(ray) < 2:
            continue
        dist = torch.cdist(centres, ray).min(1).values / unit  # (n,) each view-1 token to the projected ray
        near, far = dist < 0.3, dist > 1.5 + 0.8
        assert allowed[i, n:][near].all() and not allowed[i, n:][far].any()
        checked += int(near.sum() > 0 and far.sum() > 0)
    assert checked > 10


def test_a_wrong_camera_misses_the_correspondences(random_points):
    """The check above fails on swapped cameras (the mask must come from the cameras of each view)."""
    eyes = torch.tensor([[5.0, 0.0, 0.5], [0.5, 1.0, 5.0]], dtype=torch.float64)  # near-perpendicular views
    w2c = torch.linalg.inv(look_at(eyes, torch.zeros(2, 3, dtype=torch.float64)))[None, :, None].float()
    K = make_intrinsics(torch.tensor([90.0, 110.0]), torch.tensor([92.0, 105.0]), torch.tensor([63.5, 60.2]),
                        torch.tensor([47.5, 50.1]))[None, :, None]
    size, grid = (96, 128), (12, 16)
    n = grid[0] * grid[1]
    xy, _ = project(random_points.float(), w2c[0, :, 0, None], K[0, :, 0, None])
    inside = ((xy >= 0) & (xy <= torch.tensor([size[1] - 1, size[0] - 1]))).all(-1).all(0)
    i, j = _nearest_token(xy[0, inside], size, grid), _nearest_token(xy[1, inside], size, grid)
    right = build_epipolar_mask(w2c, K, size, grid).per_frame[0, 0]
    swapped = build_epipolar_mask(w2c.flip(1), K.flip(1), size, grid).per_frame[0, 0]
    assert right[i, n + j].all()
    assert swapped[i, n + j].float().mean() < 0.75


def test_coincident_centres_fall_back_to_full_attention_with_a_warning(two_cameras):
    w2c, K = two_cameras
    turn = torch.eye(4, dtype=w2c.dtype)
    turn[:3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    w2c = torch.stack([w2c[0], turn @ w2c[0]]).float()  # the second camera turned about its own centre
    cams = (w2c[None, :, None], K[None, :, None].float(), (32, 32), (4, 4))
    with pytest.warns(UserWarning, match="share a camera centre"):
        mask = build_epipolar_mask(*cams, band=0.5, coincident="full")
    assert mask.per_frame is None and mask.density() == 1.0
    # the default: the exact correspondence of a shared centre, the rotation homography (no warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exact = build_epipolar_mask(*cams, band=0.5)
    d = token_epipolar_distances(*cams)
    assert torch.isfinite(d).all() and d.max() > 1 and exact.density() < 0.75


def test_soft_bias_is_zero_in_the_band_and_decays_outside(two_cameras):
    w2c, K = two_cameras
    w2c, K = w2c[None, :, None].float(), K[None, :, None].float()
    d = token_epipolar_distances(w2c, K, (96, 128), (12, 16))[0, 0, 0, 1]
    bias = build_epipolar_mask(w2c, K, (96, 128), (12, 16), band=1.0, decay=2.0).per_frame[0, 0, :192, 192:]
    torch.testing.assert_close(bias, -(d - 1.0).clamp_min(0) * 2.0)


def test_token_centres_are_pixel_centres():
    c = token_centres((8, 8), (2, 2))
    assert c.tolist() == [[1.5, 1.5], [5.5, 1.5], [1.5, 5.5], [5.5, 5.5]]


def _inputs(clip, model):
    B, V, T, _, H, W = clip.video.shape
    sample = clip.video * 2 - 1
    timestep = torch.full((B, V, T), 500.0)
    timestep[:, 0] = 0
    camera = camera_condition(clip.w2c, clip.K, (H, W), (H, W))
    mask = model.epipolar_mask(clip.w2c, clip.K, (H, W), (H, W))
    return sample, timestep, camera, mask


def _open(module):  # non-zero, as training would make them
    g = torch.Generator().manual_seed(0)
    for p in module.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.1


def test_zero_initialised_module_starts_as_a_no_op_and_then_learns(clip):
    torch.manual_seed(0)
    base = build_model("tiny")
    _open(base.camera_encoder)
    model = build_model("tiny")
    model.load_state_dict(base.state_dict())
    model.add_epipolar(mode="module", blocks=[0, 1], band=1.0)
    sample, timestep, camera, mask = _inputs(clip, model)
    with torch.no_grad():
        a = base(sample, timestep, camera).sample
        b = model(sample, timestep, camera, epipolar=mask).sample
    assert torch.equal(a, b)
    out = model(sample, timestep, camera, epipolar=mask).sample
    out.square().mean().backward()
    assert model.cross_view["0"].out.weight.grad.abs().sum() > 0
    _open(model.cross_view)
    with torch.no_grad():
        c = model(sample, timestep, camera, epipolar=mask).sample
    assert not torch.allclose(a, c)


def test_module_attends_only_within_the_band(clip):
    """Changing the view-1 tokens that a view-0 token may not see leaves that token's update unchanged."""
    torch.manual_seed(0)
    model = build_model("tiny", epipolar={"mode": "module", "blocks": [0], "band": 0.5})
    module = model.cross_view["0"]
    _open(module)
    V, T, n, D = 2, 2, 64, 32
    mask = model.epipolar_mask(clip.w2c, clip.K, (32, 32), (32, 32))
    query = 27  # a view-0 token of frame 0
    unseen = (~mask.per_frame[0, 0, query, n:]).nonzero()[:, 0]  # its blocked view-1 keys
    assert 0 < len(unseen) < n
    x = torch.randn(1, V * T * n, D)
    y = x.clone()
    y[0, T * n + unseen] += 5.0  # view 1, frame 0 (token order: view, frame, token)
    with torch.no_grad():
        a, b = module(x, mask), module(y, mask)
    torch.testing.assert_close(a[0, query], b[0, query])
    assert not torch.allclose(a[0, T * n : T * n + n], b[0, T * n : T * n + n])  # view 1 sees its own tokens


def test_processor_with_an_all_covering_band_equals_full_attention(clip):
    torch.manual_seed(0)
    base = build_model("tiny")
    _open(base)
    model = build_model("tiny", epipolar={"mode": "processor", "blocks": [0, 1], "band": 1e6, "cross_frames": True})
    model.load_state_dict(base.state_dict())
    sample, timestep, camera, mask = _inputs(clip, model)
    assert mask.joint is None and mask.density("joint") == 1.0
    with torch.no_grad():
        assert torch.equal(base(sample, timestep, camera).sample, model(sample, timestep, camera, epipolar=mask).sample)
    # a soft mask whose band covers everything: a zero bias through the masked path, equal to float precision
    soft = build_model("tiny", epipolar={"mode": "processor", "blocks": [0, 1], "band": 1e6, "decay": 1.0,
                                         "cross_frames": True})
    soft.load_state_dict(base.state_dict())
    mask = soft.epipolar_mask(clip.w2c, clip.K, (32, 32), (32, 32))
    assert mask.joint is not None and not mask.joint.any()
    with torch.no_grad():
        torch.testing.assert_close(base(sample, timestep, camera).sample,
                                   soft(sample, timestep, camera, epipolar=mask).sample, atol=1e-5, rtol=1e-5)


def test_processor_mask_changes_the_output_and_is_per_forward(clip):
    torch.manual_seed(0)
    base = build_model("tiny")
    _open(base)
    model = build_model("tiny", epipolar={"mode": "processor", "blocks": [0], "band": 0.5})
    model.load_state_dict(base.state_dict())
    sample, timestep, camera, mask = _inputs(clip, model)
    assert mask.joint is not None and mask.joint.shape == (1, 1, 256, 256)
    assert mask.density("joint") < 0.6  # own view (1/2) + a band of the other view's same frame
    with torch.no_grad():
        full = base(sample, timestep, camera).sample
        masked = model(sample, timestep, camera, epipolar=mask).sample
        with pytest.warns(UserWarning, match="given no mask"):
            again = model(sample, timestep, camera).sample  # no mask: back to full attention
    assert not torch.allclose(full, masked)
    assert torch.equal(full, again)


@pytest.mark.parametrize("mode", ["processor", "module"])
@pytest.mark.parametrize("decay", [None, 2.0])
def test_flex_backend_matches_the_dense_mask(clip, mode, decay):
    """FlexAttention's block masks (and score_mod for the soft bias), built from the pair mask by index arithmetic,
    give the dense path's outputs (forward; FlexAttention has no CPU backward)."""
    torch.manual_seed(0)
    model = build_model("tiny", epipolar={"mode": mode, "blocks": [0], "band": 0.5, "decay": decay})
    _open(model)
    sample, timestep, camera, mask = _inputs(clip, model)
    flex = model.epipolar_mask(clip.w2c, clip.K, (32, 32), (32, 32))
    flex.backend = "flex"
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = model(sample, timestep, camera, epipolar=flex).sample
        b = model(sample, timestep, camera, epipolar=mask).sample
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    if mode == "module":  # and the module is doing something
        with pytest.warns(UserWarning, match="given no mask"):
            assert not torch.allclose(b, model(sample, timestep, camera, epipolar=None).sample)


def test_save_and_reload_keeps_epipolar_attention(clip, tmp_path, assert_same_model):
    torch.manual_seed(0)
    model = build_model("tiny", epipolar={"mode": "module", "blocks": [1], "band": 2.0, "decay": 1.0})
    _open(model.cross_view)
    model.save_pretrained(tmp_path)
    again = MultiViewTransformer.from_pretrained(tmp_path)
    sample, timestep, camera, mask = _inputs(clip, model)
    with torch.no_grad():
        assert_same_model(model, again, model(sample, timestep, camera, epipolar=mask).sample,
                          again(sample, timestep, camera, epipolar=mask).sample)


def test_bad_epipolar_settings_are_named():
    with pytest.raises(ValueError, match="epipolar.mode"):
        build_model("tiny", epipolar={"mode": "sparse"})
    with pytest.raises(ValueError, match="epipolar.blocks"):
        build_model("tiny", epipolar={"blocks": [5]})
    with pytest.raises(ValueError, match="unknown key"):
        build_model("tiny", epipolar={"bandwidth": 1})
    with pytest.raises(ValueError, match="epipolar.decay"):
        build_model("tiny", epipolar={"decay": 0})


def test_auto_backend_is_flex_on_cuda_and_dense_sdpa_elsewhere():
    from mvtrack.models.epipolar import pick_backend

    assert pick_backend("auto", torch.device("cuda")) == "flex"
    assert pick_backend("auto", torch.device("cuda:1")) == "flex"
    assert pick_backend("auto", torch.device("cpu")) == "sdpa"
    assert pick_backend("sdpa", torch.device("cuda")) == "sdpa"  # an explicit choice stands
    with pytest.raises(ValueError, match="epipolar.backend"):
        pick_backend("dense", torch.device("cpu"))


def test_a_dense_mask_past_the_limit_is_refused_before_it_is_built(clip):
    """Processor mode's joint mask is L x L: past the limit the call fails with a message naming the ways out,
    and nothing of that size is allocated; the per-frame masks of module mode stay under it."""
    model = build_model("tiny", epipolar={"mode": "processor", "blocks": [0], "band": 0.5})
    sample, timestep, camera, mask = _inputs(clip, model)
    L = mask.views * mask.frames * mask.tokens
    assert mask.dense_bytes("joint") == clip.video.shape[0] * L * L  # bool
    mask.dense_limit = mask.dense_bytes("joint") - 1
    with pytest.raises(ValueError, match=r"joint mask of .* would take .* GiB.*backend flex on CUDA.*mode module"):
        model(sample, timestep, camera, epipolar=mask)
    assert ("joint", None) not in mask._cache
    mask.dense_limit = mask.dense_bytes("joint")  # at the limit it is built, and the model runs
    model(sample, timestep, camera, epipolar=mask)
    soft = build_model("tiny", epipolar={"mode": "module", "blocks": [0], "band": 0.5, "decay": 2.0})
    soft_mask = _inputs(clip, soft)[3]
    assert soft_mask.dense_bytes("per_frame", torch.bfloat16) == soft_mask.dense_bytes("per_frame") // 2  # f32 -> bf16


def test_cross_view_modules_are_recomputed_under_gradient_checkpointing(clip):
    """With gradient checkpointing the cross-view modules keep no activations (they run again in the backward, as
    the blocks do; at 65k tokens each would hold ~25 bytes x tokens x width), and the gradients are unchanged."""
    torch.manual_seed(0)
    a = build_model("tiny", epipolar={"mode": "module", "blocks": [0, 1], "band": 1.0})
    _open(a.cross_view)
    b = build_model("tiny", epipolar={"mode": "module", "blocks": [0, 1], "band": 1.0})
    b.load_state_dict(a.state_dict())
    b.enable_gradient_checkpointing()
    calls, module = [], b.cross_view["1"]
    forward = module.forward
    module.forward = lambda *args: calls.append(1) or forward(*args)
    for model in (a, b):
        sample, timestep, camera, mask = _inputs(clip, model)
        model(sample, timestep, camera, epipolar=mask).sample.square().mean().backward()
    assert len(calls) == 2  # forward, and again in the backward
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=name)
