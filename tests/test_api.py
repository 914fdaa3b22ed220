"""The Python API a user starts from (``mvtrack.rerender``) and the default model of any install."""

from typer.testing import CliRunner

import mvtrack
from mvtrack.cli import app
from mvtrack.geometry import write_re10k
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.viz import read_video, to_uint8_frames, write_mp4


def test_rerender_a_video_in_a_few_lines(tmp_path):
    clip = render_clips(SynthConfig(views=2, frames=2, height=16, width=16, num_tracks=4), [1])
    write_mp4(tmp_path / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(tmp_path / "src.txt", clip.w2c[0, 0], clip.K[0, 0], 16, 16)

    result = mvtrack.rerender(tmp_path / "src.mp4", ["orbit:10", "pan:5"], model="tiny", cameras=tmp_path / "src.txt",
                              frames=2, size=(16, 16), steps=1, device="cpu")
    assert len(result.views) == 2 and all(v.shape == (2, 3, 16, 16) for v in result.views)
    assert 0 <= float(result.views[0].min()) and float(result.views[0].max()) <= 1
    result.save(tmp_path / "out")
    assert read_video(tmp_path / "out" / "grid.mp4").shape == (2, 16, 3 * 16 + 2 * 2, 3)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "contact_sheet.png", "grid.mp4", "view_00_source.mp4", "view_01.mp4", "view_02.mp4"]


def test_an_install_without_the_embedded_model_asks_for_model(tmp_path, monkeypatch):
    """A wheel does not carry weights/mvtrack-S: the commands that default to it say to pass --model, in one line."""
    import mvtrack.defaults

    monkeypatch.setattr(mvtrack.defaults, "SOURCE_TREE_MODEL", tmp_path / "not-installed")
    for args in (["demo", "--out", str(tmp_path / "d")], ["analyze-layers", "--out", str(tmp_path / "a")],
                 ["generate", "--image", str(tmp_path / "x.png"), "--out", str(tmp_path / "g")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and "no default model" in errors[0] and "--model" in errors[0], result.output
