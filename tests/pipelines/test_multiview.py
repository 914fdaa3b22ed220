import pytest
import torch

from mvtrack.models import camera_condition
from mvtrack.pipelines import MultiViewPipeline, observed_layout
from mvtrack.scenes import SynthConfig, render_clips


@pytest.fixture(scope="module")
def clip():
    return render_clips(SynthConfig(views=2, frames=3, height=16, width=16, num_tracks=4), [7])


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    p = MultiViewPipeline.from_model("tiny")
    p.set_progress_bar_config(disable=True)
    return p


def run(pipe, clip, seed=0, **kw):
    kw = {"video": clip.video, "observed": "rerender", "num_inference_steps": 3, **kw}
    return pipe(clip.w2c, clip.K, generator=torch.Generator().manual_seed(seed), **kw).video


def test_same_seed_same_samples(pipe, clip):
    a, b, c = run(pipe, clip, 0), run(pipe, clip, 0), run(pipe, clip, 1)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a[:, 1] - c[:, 1]).abs().max() > 1e-3
    assert a.shape == clip.video.shape and 0 <= a.min() and a.max() <= 1


def test_observed_frames_are_kept_and_condition_the_rest(pipe, clip):
    out = run(pipe, clip)
    torch.testing.assert_close(out[:, 0], clip.video[:, 0], rtol=0, atol=0)
    other = clip.video.clone()
    other[:, 0] = 1 - other[:, 0]
    assert (run(pipe, clip, video=other)[:, 1] - out[:, 1]).abs().max() > 1e-4
    i2v = run(pipe, clip, observed="i2v")
    torch.testing.assert_close(i2v[:, 0, 0], clip.video[:, 0, 0], rtol=0, atol=0)


def test_layouts():
    assert observed_layout("rerender", 1, 3, 2)[0].tolist() == [[True, True], [False, False], [False, False]]
    assert observed_layout("i2v", 1, 2, 2).sum() == 1
    assert not observed_layout("joint", 1, 2, 2).any()
    with pytest.raises(ValueError, match="at least 2 views"):
        observed_layout("rerender", 1, 1, 2)
    with pytest.raises(ValueError, match="one of"):
        observed_layout("inpaint", 1, 2, 2)


def test_check_inputs_errors(pipe, clip):
    with pytest.raises(ValueError, match="K: expected"):
        pipe(clip.w2c, clip.K[:, :1], clip.video)
    with pytest.raises(ValueError, match="observed frames need pixels"):
        pipe(clip.w2c, clip.K, None, "rerender", height=16, width=16)
    bad = clip.video.clone()
    bad[0, 0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        pipe(clip.w2c, clip.K, bad)
    with pytest.raises(ValueError, match="values in \\[0, 1\\]"):
        pipe(clip.w2c, clip.K, clip.video * 255)
    with pytest.raises(ValueError, match="multiples of 4"):
        pipe(clip.w2c, clip.K, clip.video[..., :14, :14])
    with pytest.raises(ValueError, match="observed: expected a bool"):
        pipe(clip.w2c, clip.K, clip.video, torch.ones(1, 2, 3))
    with pytest.raises(ValueError, match="num_inference_steps"):
        pipe(clip.w2c, clip.K, clip.video, num_inference_steps=0)


def test_latent_space_pipeline_with_wan_vae(wan_root):
    """The real path end to end with tiny random weights: Wan transformer + Wan VAE from a local root."""
    root, _ = wan_root
    pipe = MultiViewPipeline.from_model(root)
    pipe.set_progress_bar_config(disable=True)
    clip = render_clips(SynthConfig(views=2, frames=5, height=32, width=32, num_tracks=4), [3])
    out = pipe(
        clip.w2c, clip.K, clip.video, "i2v", num_inference_steps=2, generator=torch.Generator().manual_seed(0)
    ).video
    assert out.shape == clip.video.shape and torch.isfinite(out).all()
    torch.testing.assert_close(out[:, 0, 0], clip.video[:, 0, 0], rtol=0, atol=0)
    with pytest.raises(ValueError, match="1 \\+ 4k frames"):
        pipe(clip.w2c[:, :, :4], clip.K[:, :, :4], clip.video[:, :, :4], "i2v")


@pytest.fixture(scope="module")
def camera_pipe():
    """The tiny model with its camera branch drawn at random: at init it is zero, and cameras could not show."""
    p = MultiViewPipeline.from_model("tiny")
    p.set_progress_bar_config(disable=True)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in p.transformer.camera_encoder.parameters():
            param.copy_(torch.randn(param.shape, generator=g) * 0.1)
    return p


def generate(pipe, w2c, K, video, observed="rerender", steps=3):
    return pipe(w2c, K, video, observed, num_inference_steps=steps, generator=torch.Generator().manual_seed(0)).video


def record_cameras(pipe):
    """Every ``camera`` the pipeline hands its transformer, one per call; remove the returned hook after use."""
    seen = []
    hook = pipe.transformer.register_forward_pre_hook(lambda module, args: seen.append(args[2].clone()))
    return seen, hook


def test_generated_views_follow_their_cameras(camera_pipe, pipe, clip):
    out = generate(camera_pipe, clip.w2c, clip.K, clip.video)
    swapped = generate(camera_pipe, clip.w2c[:, [1, 0]], clip.K[:, [1, 0]], clip.video)
    assert (swapped[:, 1] - out[:, 1]).abs().max() > 1e-2
    source_camera = clip.w2c.clone(), clip.K.clone()
    source_camera[0][:, 1], source_camera[1][:, 1] = clip.w2c[:, 0], clip.K[:, 0]  # the target where the source is
    assert (generate(camera_pipe, *source_camera, clip.video)[:, 1] - out[:, 1]).abs().max() > 1e-2
    # the zero-initialised branch of a fresh model cannot tell (why the pipeline tests above cannot see cameras)
    torch.testing.assert_close(generate(pipe, clip.w2c[:, [1, 0]], clip.K[:, [1, 0]], clip.video),
                               generate(pipe, clip.w2c, clip.K, clip.video), rtol=0, atol=0)


def test_the_model_gets_the_plucker_rays_of_each_view_in_order(camera_pipe):
    clip = render_clips(SynthConfig(views=3, frames=3, height=16, width=16, num_tracks=4), [11])
    seen, hook = record_cameras(camera_pipe)
    try:
        for perm in ([0, 1, 2], [0, 2, 1], [2, 0, 1]):
            generate(camera_pipe, clip.w2c[:, perm], clip.K[:, perm], clip.video[:, perm], steps=2)
    finally:
        hook.remove()
    assert len(seen) == 6 and all(torch.equal(seen[i], seen[i + 1]) for i in (0, 2, 4))  # one camera per run
    direct = camera_condition(clip.w2c, clip.K, (16, 16), (16, 16))  # (B, V, T, 6, H, W)
    torch.testing.assert_close(seen[0], direct)
    # view 0 stays the reference: the other views' rays follow their cameras
    torch.testing.assert_close(seen[2], seen[0][:, [0, 2, 1]])
    # a new view 0 is a new reference frame: all rays are re-expressed in it
    torch.testing.assert_close(seen[4], camera_condition(clip.w2c[:, [2, 0, 1]], clip.K[:, [2, 0, 1]], (16, 16), (16, 16)))
    assert (seen[4] - seen[0][:, [2, 0, 1]]).abs().max() > 0.1


def test_latent_frame_k_gets_the_camera_of_video_frame_4k(wan_root):
    root, _ = wan_root
    pipe = MultiViewPipeline.from_model(root)
    pipe.set_progress_bar_config(disable=True)
    clip = render_clips(SynthConfig(views=2, frames=5, height=32, width=32, num_tracks=4), [3])
    seen, hook = record_cameras(pipe)
    try:
        generate(pipe, clip.w2c, clip.K, clip.video, "i2v", steps=1)
    finally:
        hook.remove()
    frames = [0, 4]  # latent frame 0 holds video frame 0, latent frame 1 frames 1-4 (camera of the last)
    torch.testing.assert_close(seen[0], camera_condition(clip.w2c[:, :, frames], clip.K[:, :, frames], (32, 32), (4, 4)))
    assert (seen[0] - camera_condition(clip.w2c[:, :, :2], clip.K[:, :, :2], (32, 32), (4, 4))).abs().max() > 1e-2
    with torch.no_grad():  # a camera branch that shows: the target's frame 2 conditions nothing, its frame 4 does
        for param in pipe.transformer.camera_encoder.parameters():
            param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(0)) * 0.1)
    out = generate(pipe, clip.w2c, clip.K, clip.video, "i2v", steps=1)
    moved = clip.w2c.clone()
    moved[:, 1, 2] = clip.w2c[:, 0, 0]  # (view 1 is static: another view's camera)
    torch.testing.assert_close(generate(pipe, moved, clip.K, clip.video, "i2v", steps=1), out, rtol=0, atol=0)
    moved[:, 1, 4] = clip.w2c[:, 0, 0]
    assert (generate(pipe, moved, clip.K, clip.video, "i2v", steps=1)[:, 1] - out[:, 1]).abs().max() > 1e-3


def test_a_source_splat_given_to_a_pixel_model_lands_where_tracks_cover(clip):
    """``source_splat`` (colour in [0, 1] + coverage, what ``generate`` makes from a real video at its geometry's
    resolution): a pixel model with its skip held open returns the given colours wherever the coverage is full, and
    its own splat's elsewhere; a wrong shape is refused."""
    from mvtrack.data import source_depth_tracks
    from mvtrack.models import build_model

    torch.manual_seed(0)
    model = build_model("tiny", prediction_type="sample",
                        track_conditioner=dict(blocks=[0], width=16, layers=1, heads=2, bands=2, skip=True,
                                               skip_init=1.0, skip_fixed=True))
    pipe = MultiViewPipeline(model, MultiViewPipeline.from_model("tiny").scheduler)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.takes_source_splat
    tracks = source_depth_tracks(clip)
    splat = torch.zeros(*clip.video.shape[:3], 4, 16, 16)
    splat[:, 1, :, :3] = 0.25
    splat[:, 1, :, 3, 4:12, 4:12] = 1.0  # covered: a square in the middle
    own = run(pipe, clip, tracks=tracks)
    given = run(pipe, clip, tracks=tracks, source_splat=splat)
    torch.testing.assert_close(given[:, 1, :, :, 4:12, 4:12], torch.full_like(given[:, 1, :, :, 4:12, 4:12], 0.25),
                               atol=2e-3, rtol=0)
    assert (own[:, 1, :, :, 4:12, 4:12] - 0.25).abs().max() > 0.05
    torch.testing.assert_close(given[:, 0], clip.video[:, 0])
    with pytest.raises(ValueError, match="source_splat"):
        run(pipe, clip, tracks=tracks, source_splat=splat[..., :8])
