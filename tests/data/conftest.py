import pytest

from mvtrack.scenes import SynthConfig, clip_seed, render_clips


@pytest.fixture(scope="session")
def small_clips():
    cfg = SynthConfig(views=2, frames=4, height=24, width=32, num_tracks=16)
    return render_clips(cfg, [clip_seed(3, i) for i in range(5)]).unbatch()
