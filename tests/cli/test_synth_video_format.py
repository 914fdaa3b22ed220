import tarfile

from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.data import iter_shard, list_shards

runner = CliRunner()


def test_synth_writes_encoded_video_and_refuses_unknown_formats(tmp_path):
    args = ["synth", "--num", "2", "--views", "2", "--frames", "3", "--size", "16x24", "--tracks", "8"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "png")])
    assert result.exit_code == 0, result.output
    with tarfile.open(list_shards(tmp_path / "png")[0]) as tar:
        names = tar.getnames()
    assert "000000000.video.1.2.png" in names and not any(n.endswith("video.npy") for n in names)  # png by default
    result = runner.invoke(app, [*args, "--video-format", "mp4", "--out", str(tmp_path / "mp4")])
    assert result.exit_code == 0, result.output
    clips = [c for p in list_shards(tmp_path / "mp4") for c in iter_shard(p)]
    assert len(clips) == 2 and clips[1].video.shape == (2, 3, 3, 16, 24)
    result = runner.invoke(app, [*args, "--video-format", "avi", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "video_format: expected one of" in result.output
    assert not (tmp_path / "x").exists()
