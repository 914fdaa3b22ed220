import pytest
import torch

from mvtrack.data import PairedTracks, source_depth_tracks
from mvtrack.models import MultiViewTransformer, build_model, camera_condition
from mvtrack.scenes import SynthConfig, clip_seed, render_clips

CONDITIONER = dict(blocks=[0, 1], width=32, layers=1, heads=2, bands=3)


@pytest.fixture(scope="module")
def batch():
    config = SynthConfig(views=2, frames=3, height=32, width=32, num_tracks=256, query_view=0)
    clip = render_clips(config, [clip_seed(1, 0)])
    x = clip.video * 2 - 1
    camera = camera_condition(clip.w2c, clip.K, (32, 32), (32, 32))
    timestep = torch.full((1, 2, 3), 700.0)
    timestep[:, 0] = 0  # view 0 observed
    return x, timestep, camera, source_depth_tracks(clip)


def _model(**kwargs) -> MultiViewTransformer:
    torch.manual_seed(0)
    return build_model("tiny", track_conditioner=dict(CONDITIONER, **kwargs))


def _open(model):  # make the zero-initialised projections non-zero, as training would
    for proj in model.conditioner.block_proj.values():
        torch.nn.init.normal_(proj.weight, std=0.2)


def _skip_model() -> MultiViewTransformer:
    """An x_0-predicting model with the skip (its gate at 0) and non-zero projections, as after training."""
    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="sample", track_conditioner=dict(CONDITIONER, skip=True))
    _open(model)
    return model


def _own_splat(model, x, tracks) -> torch.Tensor:
    """The splat (B, V, F, C + 1, h, w) the model's pixel path makes of ``x``'s source view."""
    tokens = model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2)
    return model.conditioner(tokens, x, tracks.tracks, tracks.depth, tracks.visible)[1]


def test_zero_initialised_conditioner_leaves_outputs_bit_identical(batch):
    x, t, cam, tracks = batch
    torch.manual_seed(0)
    plain = build_model("tiny")
    model = _model()
    model.load_state_dict(plain.state_dict(), strict=False)
    reference = plain(x, t, cam).sample
    assert torch.equal(model(x, t, cam, **tracks.model_inputs()).sample, reference)
    plain.add_track_conditioner(**CONDITIONER)  # a camera-only checkpoint given a conditioner starts unchanged
    assert torch.equal(plain(x, t, cam, **tracks.model_inputs()).sample, reference)


def test_gradients_reach_the_temporal_transformer_and_the_pixel_path(batch):
    x, t, cam, tracks = batch
    model = _model()
    _open(model)
    model(x, t, cam, **tracks.model_inputs()).sample.square().mean().backward()
    c = model.conditioner
    for name, p in [("temporal", c.temporal.layers[0].self_attn.in_proj_weight), ("token_in", c.token_in.weight),
                    ("geometry_in", c.geometry_in.weight), ("pixels", c.pixel_embedding.weight)]:
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_no_visible_track_is_exactly_camera_only(batch):
    x, t, cam, tracks = batch
    model = _model()
    _open(model)
    hidden = PairedTracks(tracks.tracks, tracks.depth, torch.zeros_like(tracks.visible), tracks.source)
    assert torch.equal(model(x, t, cam, **hidden.model_inputs()).sample, model(x, t, cam).sample)
    assert not torch.equal(model(x, t, cam, **tracks.model_inputs()).sample, model(x, t, cam).sample)


def test_the_condition_moves_with_the_target_positions(batch):
    # the pixel path carries source content to the target positions: shifting them shifts the splat
    x, t, cam, tracks = batch
    model = _model(tokens=False)
    cond, _ = model.conditioner(model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2),
                                x, tracks.tracks, tracks.depth, tracks.visible)
    moved = tracks.tracks.clone()
    moved[:, 1, ..., 0] += 8.0  # two tokens to the right in the target view
    cond_moved, _ = model.conditioner(
        model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2), x, moved, tracks.depth,
        tracks.visible)
    grid = cond.reshape(1, 2, 3, 8, 8, -1)[:, 1]  # target view tokens (B, F, h', w', D)
    grid_moved = cond_moved.reshape(1, 2, 3, 8, 8, -1)[:, 1]
    assert torch.allclose(grid_moved[..., 2:6, :], grid[..., 0:4, :], atol=1e-5)  # interior tokens moved by 2
    assert not torch.allclose(grid_moved, grid)


def test_save_and_reload_keeps_the_conditioner(batch, tmp_path, assert_same_model):
    x, t, cam, tracks = batch
    model = _model()
    _open(model)
    model.save_pretrained(tmp_path / "m")
    again = MultiViewTransformer.from_pretrained(tmp_path / "m")
    assert again.conditioner is not None
    inputs = tracks.model_inputs()
    assert_same_model(model, again, model(x, t, cam, **inputs).sample, again(x, t, cam, **inputs).sample)


def test_bad_conditioner_settings_and_track_shapes_are_named(batch):
    x, t, cam, tracks = batch
    with pytest.raises(ValueError, match="blocks"):
        build_model("tiny", track_conditioner=dict(blocks=[5]))
    model = _model()
    with pytest.raises(ValueError, match="tracks"):
        model(x, t, cam, track_xy=tracks.tracks[:, :, :2], track_depth=tracks.depth, track_visible=tracks.visible)


def test_geometric_skip_starts_closed_and_opens_onto_the_splat(batch):
    x, t, cam, tracks = batch
    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="sample", track_conditioner=dict(CONDITIONER, skip=True))
    plain = model(x, t, cam).sample
    assert torch.equal(model(x, t, cam, **tracks.model_inputs()).sample, plain)  # gate at 0: unchanged
    with torch.no_grad():
        model.conditioner.skip_gate.fill_(1 / model.conditioner.skip_scale)  # gate = 1
    velocity = model(x, t, cam, **tracks.model_inputs()).sample
    sigma = t[..., None, None, None] / 1000
    x0 = x - sigma * velocity  # the clean frames the model now predicts
    tokens = model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2)
    _, splat = model.conditioner(tokens, x, tracks.tracks, tracks.depth, tracks.visible)
    warped, coverage = splat[:, :, :, :3], splat[:, :, :, 3:]
    full = (coverage == 1).expand_as(warped)[:, 1]
    assert full.any()
    assert torch.allclose(x0[:, 1][full], warped[:, 1][full], atol=1e-4)  # fully covered pixels: the splat
    assert torch.equal(model(x, t, cam).sample, plain)  # and without tracks, still camera-only


def test_velocity_models_get_the_skip_on_generated_frames_only(batch):
    x, t, cam, tracks = batch
    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="velocity", track_conditioner=dict(CONDITIONER, skip=True))
    with torch.no_grad():
        model.conditioner.skip_gate.fill_(1 / model.conditioner.skip_scale)
    plain = model(x, t, cam).sample
    velocity = model(x, t, cam, **tracks.model_inputs()).sample
    assert torch.equal(velocity[:, 0], plain[:, 0])  # the observed source view: untouched
    tokens = model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2)
    _, splat = model.conditioner(tokens, x, tracks.tracks, tracks.depth, tracks.visible)
    full = (splat[:, 1, :, 3:] == 1).expand_as(x[:, 1])
    x0 = x[:, 1] - 0.7 * velocity[:, 1]
    assert full.any() and torch.allclose(x0[full], splat[:, 1, :, :3][full], atol=1e-4)


def _condition(model, x, tracks, reverse: bool) -> torch.Tensor:
    """The conditioner's token condition, per view and frame (1, V, F, h', w', D), of the clip or of the clip played
    backwards (then flipped back into forward order)."""
    flip = (lambda v: v.flip(2)) if reverse else (lambda v: v)  # noqa: E731
    x = flip(x)
    tokens = model.wan.patch_embedding(x.flatten(1, 2).transpose(1, 2)).flatten(2).transpose(1, 2)
    cond, _ = model.conditioner(tokens, x, *(flip(v) for v in (tracks.tracks, tracks.depth, tracks.visible)))
    return flip(cond.reshape(*x.shape[:3], 8, 8, -1))


def test_frame_positions_make_the_per_track_transformer_see_frame_order():
    """Without frame positions the per-track transformer is blind to order: the clip played backwards gives the same
    condition per frame. With them it must not (fails when every frame gets the same position)."""
    clip = render_clips(SynthConfig(views=2, frames=4, height=32, width=32, num_tracks=256, query_view=0),
                        [clip_seed(1, 0)])
    x, tracks = clip.video * 2 - 1, source_depth_tracks(clip)
    for frame_positions in (True, False):
        model = _model(frame_positions=frame_positions)
        _open(model)
        with torch.no_grad():
            forward, backward = _condition(model, x, tracks, False), _condition(model, x, tracks, True)
        if frame_positions:
            assert (forward - backward).abs().max() > 1e-3 * forward.abs().max()
        else:
            torch.testing.assert_close(forward, backward, rtol=1e-5, atol=1e-5)


@pytest.mark.xfail(strict=True, reason="fourier_features(+-1) coincide: the first and last frame get the same "
                   "position (sin(+-pi 2^k) = 0, cos even), so a 3-frame clip played backwards conditions alike")
def test_every_frame_has_its_own_position(batch):
    x, _, _, tracks = batch
    model = _model(frame_positions=True)
    _open(model)
    with torch.no_grad():
        forward, backward = _condition(model, x, tracks, False), _condition(model, x, tracks, True)
    assert (forward - backward).abs().max() > 1e-3 * forward.abs().max()


def test_bf16_model_runs_with_tracks(batch):
    x, t, cam, tracks = batch
    model = _model(skip=True).to(torch.bfloat16)
    _open(model)
    out = model(x.bfloat16(), t, cam.bfloat16(), **tracks.model_inputs()).sample
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()


def test_a_splat_given_by_the_caller_replaces_the_pixel_paths_own(batch):
    """``track_splat`` (a real source's splat made at a finer resolution): with the gate open, fully covered pixels
    of x_0 are the given colours, the source view's channels are not read, and the model's own splat handed back
    gives exactly its own output."""
    x, t, cam, tracks = batch
    model = _skip_model()
    with torch.no_grad():
        model.conditioner.skip_gate.fill_(1 / model.conditioner.skip_scale)
    own = _own_splat(model, x, tracks)
    inputs = tracks.model_inputs()
    plain = model(x, t, cam, **inputs).sample
    given = own.clone()
    given[:, 0] = 7.0  # the source view: never read
    assert torch.equal(model(x, t, cam, **inputs, track_splat=given).sample, plain)
    given[:, 1, :, :3] = 0.25
    out = model(x, t, cam, **inputs, track_splat=given).sample
    x0 = x - t[..., None, None, None] / 1000 * out  # the clean frames predicted (the output is a velocity)
    full = (own[:, 1, :, 3:] == 1).expand_as(x[:, 1])
    assert full.any() and torch.allclose(x0[:, 1][full], torch.full_like(x0[:, 1][full], 0.25), atol=1e-4)
    assert not torch.equal(out[:, 1], plain[:, 1])
    with pytest.raises(ValueError, match="track_splat"):
        model(x, t, cam, **inputs, track_splat=given[..., :16])


def test_a_pixel_head_added_to_a_trained_skip_and_removed_again(batch, tmp_path):
    """``extend_track_conditioner``: a head added starts at zero (outputs unchanged); trained (here: perturbed), it
    changes them; removed (``pixel_head=0``), the model is the headless one again, and reloads as saved."""
    x, t, cam, tracks = batch
    model = _skip_model()
    inputs = tracks.model_inputs()
    with torch.no_grad():
        base = model(x, t, cam, **inputs).sample
        model.extend_track_conditioner(pixel_head=8, skip_init=1.0, skip_fixed=True)
        gated = model(x, t, cam, **inputs).sample
        assert model.conditioner.pixel_head is not None and not isinstance(model.conditioner.skip_gate,
                                                                         torch.nn.Parameter)
        torch.nn.init.normal_(model.conditioner.pixel_head[-1].weight, std=0.1)
        assert not torch.allclose(model(x, t, cam, **inputs).sample, gated)
        model.extend_track_conditioner(pixel_head=0)
        assert model.conditioner.pixel_head is None and model.config.track_conditioner["pixel_head"] == 0
        torch.testing.assert_close(model(x, t, cam, **inputs).sample, gated)
        assert not torch.allclose(gated, base)  # the gate moved from 0 to 1
        model.save_pretrained(tmp_path)
        again = MultiViewTransformer.from_pretrained(tmp_path)
        assert again.conditioner.pixel_head is None
        torch.testing.assert_close(again(x, t, cam, **inputs).sample, gated)


def test_hole_fill_starts_closed_and_opens_onto_the_filled_splat(batch):
    """``hole_fill``: added to a trained skip, outputs are unchanged (its gate at 0); with both gates at 1, x_0 is
    the splat where tracks fully land and the splat's fill (``geometry.fill_holes``) where none does."""
    from mvtrack.geometry import fill_holes

    x, t, cam, tracks = batch
    model = _skip_model()
    inputs = tracks.model_inputs()
    with torch.no_grad():
        model.extend_track_conditioner(skip_init=1.0, skip_fixed=True)
        before = model(x, t, cam, **inputs).sample
        model.extend_track_conditioner(hole_fill=True)
        assert torch.equal(model(x, t, cam, **inputs).sample, before)
        model.conditioner.hole_gate.fill_(1 / model.conditioner.skip_scale)
        x0 = x - t[..., None, None, None] / 1000 * model(x, t, cam, **inputs).sample
        splat = _own_splat(model, x, tracks)
    warped, coverage = splat[0, 1, :, :3], splat[0, 1, :, 3:]
    filled = fill_holes(warped, coverage > 0)
    hole, full = (coverage == 0).expand_as(warped), (coverage >= 1).expand_as(warped)
    assert hole.any() and full.any()
    torch.testing.assert_close(x0[0, 1][hole], filled[hole], atol=1e-4, rtol=0)
    torch.testing.assert_close(x0[0, 1][full], warped[full], atol=1e-4, rtol=0)
    closed = x - t[..., None, None, None] / 1000 * before  # the network's own x_0 in the holes
    assert not torch.allclose(x0[0, 1][hole], closed[0, 1][hole], atol=1e-3)
