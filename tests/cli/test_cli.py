import imageio.v3 as iio
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.data import iter_shard, list_shards

runner = CliRunner()


def test_synth_then_viz(tmp_path):
    shards = tmp_path / "shards"
    result = runner.invoke(app, ["synth", "--num", "3", "--views", "2", "--frames", "4", "--size", "24x32",
                                 "--tracks", "16", "--shards", "2", "--out", str(shards)])
    assert result.exit_code == 0, result.output
    assert [p.name for p in list_shards(shards)] == ["shard-000000.tar", "shard-000001.tar"]
    clips = [c for p in list_shards(shards) for c in iter_shard(p)]
    assert len(clips) == 3 and clips[0].video.shape == (2, 4, 3, 24, 32)
    assert [c.meta["index"] for c in clips] == [0, 1, 2]

    result = runner.invoke(app, ["viz", str(shards), "--out", str(tmp_path / "viz"), "--max-clips", "2"])
    assert result.exit_code == 0, result.output
    video = iio.imread(tmp_path / "viz" / "clip_0001.mp4", plugin="pyav")
    assert video.shape[0] == 4 and video.shape[1] >= 48  # 2 views tiled, upscaled 2x
    assert iio.imread(tmp_path / "viz" / "clip_0001.gif").shape[0] == 4
    assert iio.imread(tmp_path / "viz" / "clip_0000_cameras.png").ndim == 3


def test_synth_rejects_bad_arguments(tmp_path):
    out = str(tmp_path / "x")
    result = runner.invoke(app, ["synth", "--size", "0", "--out", out])
    assert result.exit_code == 2 and "positive integers" in result.output
    result = runner.invoke(app, ["synth", "--views", "0", "--out", out])
    assert result.exit_code == 2 and "SynthConfig.views" in result.output
    result = runner.invoke(app, ["viz", str(tmp_path / "missing"), "--out", out])
    assert result.exit_code == 2 and "neither a directory" in result.output
