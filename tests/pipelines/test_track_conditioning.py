import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from mvtrack.data import PairedTracks, source_depth_tracks
from mvtrack.models import build_model
from mvtrack.pipelines import MultiViewPipeline
from mvtrack.scenes import SynthConfig, clip_seed, render_clips


@pytest.fixture(scope="module")
def setup():
    clip = render_clips(SynthConfig(views=2, frames=3, height=32, width=32, num_tracks=256, query_view=0), [clip_seed(2, 0)])
    torch.manual_seed(0)
    model = build_model("tiny", track_conditioner=dict(blocks=[0], width=16, layers=1, heads=2, bands=2)).eval()
    for proj in model.conditioner.block_proj.values():  # as if trained: the condition reaches the blocks
        torch.nn.init.normal_(proj.weight, std=0.3)
    pipe = MultiViewPipeline(model, FlowMatchEulerDiscreteScheduler(shift=3.0))
    pipe.set_progress_bar_config(disable=True)
    return clip, pipe


def _run(pipe, clip, tracks):
    return pipe(clip.w2c, clip.K, clip.video, "rerender", num_inference_steps=2,
                generator=torch.Generator().manual_seed(0), tracks=tracks).video


def test_pipeline_passes_the_tracks_to_the_model(setup):
    clip, pipe = setup
    tracks = source_depth_tracks(clip)
    without = _run(pipe, clip, None)
    hidden = PairedTracks(tracks.tracks, tracks.depth, torch.zeros_like(tracks.visible), 0)
    assert torch.equal(_run(pipe, clip, hidden), without)  # no visible track: camera-only
    with_tracks = _run(pipe, clip, tracks)
    assert not torch.allclose(with_tracks[:, 1], without[:, 1])
    assert torch.equal(with_tracks[:, 0], clip.video[:, 0])  # the observed source is returned as given


def test_pipeline_rejects_tracks_of_another_clip_layout(setup):
    clip, pipe = setup
    tracks = source_depth_tracks(clip).select(frames=torch.arange(2))
    with pytest.raises(ValueError, match="tracks"):
        _run(pipe, clip, tracks)
