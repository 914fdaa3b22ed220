"""Bad inputs, tried as a new user would: every one ends in one ``error:`` line naming the input and what was
expected, exit code 2, no traceback, and nothing deleted. The counts of this suite are in docs/reliability.md.

Table-driven CLI cases first (one workspace of broken files built once), then the cases that need a training
run (output safety, the NaN guard), then hypothesis properties of the geometry and the readers.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from mvtrack.cli import app
from mvtrack.data import ReadStats, ShardError, decode_clip, encode_clip, iter_shard
from mvtrack.geometry import look_at, make_intrinsics, plucker_rays, read_re10k, write_re10k
from mvtrack.models.presets import build_model
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.training import TrainConfig
from mvtrack.viz import to_uint8_frames, write_mp4

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"
SMALL = ["--set", "data.height=16", "--set", "data.width=16", "--set", "data.frames=2", "--set", "log_every=1"]
runner = CliRunner()


def invoke(args: list[str]):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *needles: str, code: int = 2) -> str:
    """Exit ``code``, no traceback, exactly one ``error:`` line holding every needle; returns that line."""
    out = result.output
    assert result.exit_code == code, out
    assert "Traceback" not in out and not isinstance(result.exception, (TypeError, AttributeError, IndexError)), out
    errors = [line for line in out.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, out
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


# --------------------------------------------------------------------------------------------------------------
# The workspace: a tiny model and its broken variants, a source video, camera files, shards, configs.


def _clip(views=2, frames=2, size=16, seed=1):
    return render_clips(SynthConfig(views=views, frames=frames, height=size, width=size, num_tracks=4), [seed])


def _mirror(src: Path, dst: Path, lines: slice | None = None) -> None:
    """Copy a RealEstate10K file with every (or some) rotation times diag(1, 1, -1): det = -1."""
    text = src.read_text().splitlines()
    out = [text[0]]
    for i, line in enumerate(text[1:]):
        parts = line.split()
        if lines is None or i in range(len(text) - 1)[lines]:
            m = np.array([float(x) for x in parts[7:]]).reshape(3, 4)
            m[:, 2] *= -1
            parts = parts[:7] + [f"{v:.10g}" for v in m.reshape(-1)]
        out.append(" ".join(parts))
    dst.write_text("\n".join(out) + "\n")


def _npy_header(shape, descr="|u1") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def _write_tar(path: Path, samples: list[dict[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for i, members in enumerate(samples):
            for suffix, payload in members.items():
                info = tarfile.TarInfo(f"{i:09d}.{suffix}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


HOSTILE_SAMPLES = {
    "npy header claims 447 GiB": lambda m: {**m, "video.npy": _npy_header((4, 10000, 2000, 2000, 3)) + b"\0" * 64},
    "npy header of another rank": lambda m: {**m, "video.npy": _npy_header((2, 2)) + b"\0" * 4},
    "npy of strings": lambda m: {**m, "w2c.npy": _npy_header((2, 2, 4, 4), "<U8") + b"\0" * 2048},
    "json fields 5": lambda m: {**m, "json": b'{"fields": 5}'},
    "json a list": lambda m: {**m, "json": b"[1, 2]"},
    "json index abc": lambda m: {**m, "json": json.dumps({"fields": json.loads(m["json"])["fields"],
                                                          "meta": {"index": "abc"}}).encode()},
    "json not json": lambda m: {**m, "json": b"{nope"},
}


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    # a tiny model that generates 2 frames of 16x16
    model = root / "tiny"
    build_model("tiny").save_pretrained(model)
    (model / "mvtrack.json").write_text(json.dumps({"data": {"frames": 2, "height": 16, "width": 16, "views": 2},
                                                    "flow_shift": 3.0}))
    config = json.loads((model / "config.json").read_text())
    layers = config["wan_config"]["num_layers"]

    def variant(name, config_text=None, files=None):
        d = root / name
        shutil.copytree(model, d)
        if config_text is not None:
            (d / "config.json").write_text(config_text)
        for rel, text in (files or {}).items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            (d / rel).write_text(text)
        return d

    variant("fewer_layers", json.dumps({**config, "wan_config": {**config["wan_config"], "num_layers": layers - 1}}))
    variant("more_layers", json.dumps({**config, "wan_config": {**config["wan_config"], "num_layers": layers + 1}}))
    variant("list_config", "[1, 2, 3]")
    variant("typed_config", json.dumps({**config, "wan_config": {**config["wan_config"], "num_layers": "two"}}))
    variant("bad_json_config", "{not json")
    variant("corrupt_meta", files={"mvtrack.json": "{\"data\": "})
    variant("meta_list", files={"mvtrack.json": "[]"})
    variant("meta_bad_frames", files={"mvtrack.json": json.dumps({"data": {"frames": "two"}})})
    variant("not_a_scheduler",
            files={"scheduler/scheduler_config.json": json.dumps({"_class_name": "AutoencoderKLWan"})})
    nan = variant("nan_weights")
    weights = load_file(nan / "diffusion_pytorch_model.safetensors")
    weights = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()}
    save_file(weights, nan / "diffusion_pytorch_model.safetensors")

    # a source video with its cameras; mirrored and mixed camera files; a non-camera file
    clip = _clip()
    write_mp4(root / "src.mp4", to_uint8_frames(clip.video[0, 0]))
    write_re10k(root / "src.txt", clip.w2c[0, 0], clip.K[0, 0], 16, 16)
    write_re10k(root / "tgt.txt", clip.w2c[0, 1], clip.K[0, 1], 16, 16)
    _mirror(root / "src.txt", root / "mirrored.txt")
    _mirror(root / "src.txt", root / "mixed.txt", slice(1, None))
    (root / "columns.txt").write_text("url\n0 1 1 0.5 0.5 0 0 1 0 0\n")
    (root / "afile").write_text("not a directory")

    # configs
    (root / "syntax.yaml").write_text("model: tiny\ndata: {views: 2,\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")

    # shards: one good sample, then one of each hostile kind
    good = encode_clip(clip.unbatch()[0])
    shards = root / "shards"
    shards.mkdir()
    _write_tar(shards / "shard-000000.tar", [good] + [make(good) for make in HOSTILE_SAMPLES.values()])
    hostile_only = root / "hostile"
    hostile_only.mkdir()
    _write_tar(hostile_only / "shard-000000.tar", [make(good) for make in HOSTILE_SAMPLES.values()])
    return root


def _train(ws, *sets):
    args = ["train", "--config", TINY, "--set", f"output_dir={ws / 'run'}", *SMALL]
    for s in sets:
        args += ["--set", s]
    return args


# (id, args built from the workspace, needles the one error line must hold)
CASES = [
    # configuration: types, ranges, unknown keys, syntax
    ("set data=5", lambda w: _train(w, "data=5"), ["TrainConfig.data", "expected a section", "--set data=5"]),
    ("set lr=[1,2]", lambda w: _train(w, "lr=[1,2]"), ["TrainConfig.lr", "expected a number"]),
    ("set data.frames.x=1", lambda w: _train(w, "data.frames.x=1"), ["data.frames", "not a section"]),
    ("set data.seed=abc", lambda w: _train(w, "data.seed=abc"), ["TrainConfig.data.seed", "integer", "'abc'"]),
    ("set checkpoint_every=true", lambda w: _train(w, "checkpoint_every=true"), ["checkpoint_every", "integer"]),
    ("set warmup_steps=-1", lambda w: _train(w, "warmup_steps=-1"), ["warmup_steps", ">= 0"]),
    ("set flow_shift=nan", lambda w: _train(w, "flow_shift=nan"), ["flow_shift", "finite"]),
    ("set flow_shift=.inf", lambda w: _train(w, "flow_shift=.inf"), ["flow_shift", "finite"]),
    ("set lr=0", lambda w: _train(w, "lr=0"), ["TrainConfig.lr", "> 0"]),
    ("set data.height=0", lambda w: _train(w, "data.height=0"), ["data.height", "[1, 8192]"]),
    ("set min_lr_ratio=2", lambda w: _train(w, "min_lr_ratio=2"), ["min_lr_ratio", "[0, 1]"]),
    ("set unknown key", lambda w: _train(w, "bacth_size=2"), ["unknown keys ['bacth_size']"]),
    ("set unknown nested key", lambda w: _train(w, "data.hieght=3"), ["TrainConfig.data", "['hieght']"]),
    ("set without =", lambda w: _train(w, "max_steps"), ["--set max_steps", "key=value"]),
    ("set bad yaml value", lambda w: _train(w, "lr=[1,"), ["--set lr=[1,", "not valid YAML"]),
    ("set tracking.layers=[a]", lambda w: _train(w, "tracking.layers=[a]"), ["tracking.layers[0]",
                                                                        "--set tracking.layers=[a]"]),
    ("set tasks unknown", lambda w: _train(w, "tasks={teleport: 1}"), ["TrainConfig.tasks"]),
    ("set data.baseline", lambda w: _train(w, "data.baseline=huge"), ["data.baseline", "small, wide, mixed"]),
    # the model sections, checked with the config (before a model loads), by their full key path
    ("set conditioner width type", lambda w: _train(w, "track2view.conditioner.width=wide"),
     ["TrainConfig.track2view.conditioner.width: expected an integer, got 'wide'",
      "--set track2view.conditioner.width=wide"]),
    ("set conditioner unknown key", lambda w: _train(w, "track2view.conditioner={blocks: [0], widht: 32}"),
     ["TrainConfig.track2view.conditioner: unknown keys ['widht']", "--set track2view.conditioner="]),
    ("set epipolar mode", lambda w: _train(w, "cvd.epipolar.mode=dense"),
     ["TrainConfig.cvd.epipolar.mode: expected one of module, processor, got 'dense'", "--set cvd.epipolar.mode"]),
    ("set epipolar blocks item", lambda w: _train(w, "cvd.epipolar={blocks: [1, x]}"),
     ["TrainConfig.cvd.epipolar.blocks[1]: expected block indices >= 0, got 'x'"]),
    ("set epipolar a number", lambda w: _train(w, "cvd.epipolar=3"), ["TrainConfig.cvd.epipolar", "section of keys"]),
    ("config yaml syntax", lambda w: ["train", "--config", w / "syntax.yaml"], ["syntax.yaml", "not valid YAML",
                                                                               "line"]),
    ("config is a list", lambda w: ["train", "--config", w / "list.yaml"], ["list.yaml", "mapping"]),
    ("config missing", lambda w: ["train", "--config", w / "none.yaml"], ["none.yaml"]),
    ("output_dir is a file", lambda w: _train(w, f"output_dir={w / 'afile'}"), ["output_dir", "afile",
                                                                                "not a directory"]),
    ("output_dir under a file", lambda w: _train(w, f"output_dir={w / 'afile' / 'x'}"), ["output_dir", "afile"]),
    ("model missing", lambda w: _train(w, f"model={w / 'nowhere'}"), ["nowhere", "neither a preset"]),
    ("shards missing", lambda w: _train(w, f"data.source={w / 'noshards'}"), ["noshards"]),
    # model directories
    ("model fewer layers", lambda w: _gen(w, model="fewer_layers"), ["fewer_layers", "config has no place"]),
    ("model more layers", lambda w: _gen(w, model="more_layers"), ["more_layers", "missing"]),
    ("model config.json a list", lambda w: _gen(w, model="list_config"), ["config.json", "JSON object"]),
    ("model config.json wrong type", lambda w: _gen(w, model="typed_config"), ["config.json", "does not describe"]),
    ("model config.json not json", lambda w: _gen(w, model="bad_json_config"), ["config.json", "not valid JSON"]),
    ("model mvtrack.json corrupt", lambda w: _gen(w, model="corrupt_meta"), ["mvtrack.json", "not valid JSON"]),
    ("model mvtrack.json a list", lambda w: _gen(w, model="meta_list"), ["mvtrack.json", "JSON object"]),
    ("model mvtrack.json frames", lambda w: _gen(w, model="meta_bad_frames"), ["mvtrack.json", "data.frames"]),
    ("model scheduler class", lambda w: _gen(w, model="not_a_scheduler"), ["scheduler_config.json",
                                                                           "not a diffusers scheduler"]),
    ("model NaN weights", lambda w: _gen(w, model="nan_weights"), ["nan_weights", "NaN"]),
    ("model missing", lambda w: _gen(w, model="nowhere"), ["nowhere", "neither a preset"]),
    # generate options and inputs
    ("generate --size 10000", lambda w: _gen(w, "--size", "10000"), ["--size 10000x10000", "4096"]),
    ("generate --size 4000 memory", lambda w: _gen(w, "--size", "4000", "--frames", "1000"), ["--size", "memory"]),
    ("generate --size 0", lambda w: _gen(w, "--size", "0"), ["--size", "positive integers"]),
    ("generate --size abc", lambda w: _gen(w, "--size", "abc"), ["--size", "'abc'"]),
    ("generate --size 15 (patch)", lambda w: _gen(w, "--size", "15"), ["multiples of 4"]),
    ("generate --fov 0", lambda w: _gen(w, "--fov", "0"), ["--fov", "(0, 180)"]),
    ("generate --fov 180", lambda w: _gen(w, "--fov", "180"), ["--fov", "(0, 180)"]),
    ("generate --fov nan", lambda w: _gen(w, "--fov", "nan"), ["--fov"]),
    ("generate --frames 0", lambda w: _gen(w, "--frames", "0"), ["--frames"]),
    ("generate --frames 5000", lambda w: _gen(w, "--frames", "5000"), ["--frames 5000", "1024"]),
    ("generate too few frames", lambda w: _gen(w, "--frames", "3"), ["src.mp4", "at least 3 frames"]),
    ("generate --out a file", lambda w: _gen(w, out="afile"), ["--out", "afile", "not a directory"]),
    ("generate --video missing", lambda w: _gen(w, video="none.mp4"), ["none.mp4", "not found"]),
    ("generate --video not a video", lambda w: _gen(w, video="src.txt"), ["src.txt"]),
    ("generate video and image", lambda w: _gen(w, "--image", w / "src.mp4"), ["exactly one of --video"]),
    ("generate --cameras mixed det", lambda w: _gen(w, "--cameras", w / "mixed.txt"), ["mixed.txt:3", "det = -1"]),
    ("generate --cameras columns", lambda w: _gen(w, "--cameras", w / "columns.txt"), ["columns.txt:2", "19"]),
    ("generate --cameras missing", lambda w: _gen(w, "--cameras", w / "none.txt"), ["none.txt", "not found"]),
    ("generate --target missing", lambda w: _gen(w, "--target", "x/none.txt"), ["none.txt", "not found"]),
    ("generate --target unknown", lambda w: _gen(w, "--target", "spin:3"), ["spin"]),
    ("generate absolute mirrored", lambda w: _gen(w, "--cameras", w / "mirrored.txt", "--absolute-targets"),
     ["mirrored.txt", "det = -1", "relative"]),
    # other commands
    ("synth --views 0", lambda w: ["synth", "--views", "0", "--out", w / "s"], ["SynthConfig.views"]),
    ("synth --size 0", lambda w: ["synth", "--size", "0", "--out", w / "s"], ["positive integers"]),
    ("viz missing source", lambda w: ["viz", w / "missing", "--out", w / "v"], ["missing", "neither a directory"]),
    ("export no checkpoint", lambda w: ["export", w / "tiny", "--out", w / "e"], ["no checkpoint"]),
]


def _gen(ws, *extra, model="tiny", video="src.mp4", out="gen"):
    return ["generate", "--model", ws / model, "--video", ws / video, "--out", ws / out, "--steps", "1", *extra]


@pytest.mark.parametrize("make_args,needles", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line(ws, make_args, needles):
    assert_one_line_error(invoke(make_args(ws)), *needles)


def test_good_inputs_still_work(ws):
    """The accepted neighbours of the cases above: a mirrored file used relatively (with a warning), a non-square
    video centre-cropped, a target file placed at the source's first camera."""
    wide = ws / "wide.mp4"
    frames = (np.random.default_rng(0).random((2, 16, 40, 3)) * 255).astype(np.uint8)
    write_mp4(wide, frames)
    result = invoke(_gen(ws, "--cameras", ws / "mirrored.txt", "--target", ws / "mirrored.txt",
                         "--target", ws / "tgt.txt", video="wide.mp4", out="ok"))
    assert result.exit_code == 0, result.output
    assert "warning: camera file" in result.output and "mirrored world" in result.output
    assert "Traceback" not in result.output
    assert (ws / "ok" / "grid.mp4").is_file()


def test_image_to_video_warns_that_it_is_experimental(ws):
    result = invoke(["generate", "--model", ws / "tiny", "--image", ws / "src.mp4", "--steps", "1",
                     "--out", ws / "i2v"])
    assert result.exit_code == 0, result.output
    assert "warning: image-to-video is experimental" in result.output


def test_corrupt_shard_samples_are_skipped_counted_and_reported(ws):
    result = invoke(["viz", ws / "shards", "--out", ws / "viz", "--max-clips", "8"])
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert f"{len(HOSTILE_SAMPLES)} skipped sample(s)" in result.output
    assert (ws / "viz" / "clip_0000.mp4").is_file()
    stats = ReadStats()
    assert len(list(iter_shard(ws / "shards" / "shard-000000.tar", stats))) == 1
    assert stats.skipped_samples == len(HOSTILE_SAMPLES)
    # nothing readable at all: a clear message and exit 1, still no traceback
    result = invoke(["viz", ws / "hostile", "--out", ws / "viz2"])
    assert result.exit_code == 1 and "no readable clips" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------------------------------------------
# Output safety and the NaN guard: these run the trainer (a few seconds each at 16x16, 2 frames).


def test_no_resume_keeps_new_checkpoints_and_resume_is_honest(tmp_path):
    out = tmp_path / "run"
    base = ["train", "--config", TINY, "--set", f"output_dir={out}", *SMALL, "--set", "checkpoint_every=2"]
    ckpts = out / "checkpoints"
    assert invoke(base + ["--set", "max_steps=6"]).exit_code == 0
    assert sorted(p.name for p in ckpts.glob("step_*")) == ["step_000004", "step_000006"]

    # --no-resume into a directory holding later steps: the new run's checkpoints survive pruning
    result = invoke(base + ["--set", "max_steps=4", "--no-resume"])
    assert result.exit_code == 0, result.output
    assert "warning: output_dir" in result.output
    assert sorted(p.name for p in ckpts.glob("step_*")) == ["step_000002", "step_000004", "step_000006"]
    assert (ckpts / "latest").read_text() == "step_000004"
    assert [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    before = sorted(str(p) for p in out.rglob("*"))

    # resuming with a changed hyper-parameter is refused, naming it; nothing is touched
    line = assert_one_line_error(invoke(base + ["--set", "max_steps=6", "--set", "lr=0.01"]), "lr (0.001 -> 0.01)",
                                 "step_000004")
    assert "resume" in line
    assert sorted(str(p) for p in out.rglob("*")) == before

    # a killed checkpoint write leaves .tmp-step_*; stale metric rows after the resumed step: both cleaned
    (ckpts / ".tmp-step_000005-999").mkdir()
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 5, "loss": 9.0}) + "\n" + json.dumps({"step": 6, "loss": 9.0}) + "\nnot json\n")
    result = invoke(base + ["--set", "max_steps=6"])  # a longer run: allowed, and recorded
    assert result.exit_code == 0, result.output
    assert not list(ckpts.glob(".tmp-*"))
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert json.loads((out / "resumes.jsonl").read_text())["changed"] == {"max_steps": [4, 6]}
    assert (ckpts / "latest").read_text() == "step_000006"


def test_nan_loss_stops_training_naming_the_step_and_last_checkpoint(tmp_path, monkeypatch):
    from mvtrack.training import trainer as trainer_module

    calls = {"n": 0}
    real = trainer_module.flow_loss

    def diverging(*args, **kwargs):
        calls["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if calls["n"] >= 4 else loss

    monkeypatch.setattr(trainer_module, "flow_loss", diverging)
    out = tmp_path / "run"
    result = invoke(["train", "--config", TINY, "--set", f"output_dir={out}", *SMALL, "--set", "max_steps=6",
                     "--set", "checkpoint_every=2"])
    assert_one_line_error(result, "diverged at step 4", str(out / "checkpoints" / "step_000002"))
    assert sorted(p.name for p in (out / "checkpoints").glob("step_*")) == ["step_000002"]
    assert not (out / "final").exists()  # no NaN weights exported


# --------------------------------------------------------------------------------------------------------------
# Properties: geometry and readers either accept an input or raise one ValueError; never anything else.

# derandomize: CI runs the same examples every time (a property that fails does so reproducibly)
FAST = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
finite = st.floats(-1e3, 1e3, allow_nan=False)
anyfloat = st.one_of(finite, st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e-30]))


def _rotation(ax, ay, az):
    eye = torch.tensor([[ax, ay, az]], dtype=torch.float64)
    return look_at(eye, torch.zeros(1, 3, dtype=torch.float64))


@FAST
@given(pos=st.tuples(finite, finite, finite), f=anyfloat, c=anyfloat, size=st.tuples(st.integers(-1, 40),
       st.integers(-1, 40)), flip=st.booleans(), url=st.text(max_size=6), data=st.data())
def test_write_re10k_never_writes_what_read_re10k_rejects(tmp_path, pos, f, c, size, flip, url, data):
    if math.hypot(*pos) < 1e-3 or math.hypot(pos[0], pos[1]) < 1e-3 * max(1.0, abs(pos[2])):
        pos = (1.0, 2.0, 3.0)  # look_at needs a view direction not parallel to its up vector (y)
    c2w = _rotation(*pos)[0]
    if flip:
        c2w[:3, 2] *= -1
    w2c = torch.linalg.inv(c2w)[None].repeat(2, 1, 1)
    K = make_intrinsics(f, abs(f), c, c).double()[None].repeat(2, 1, 1)
    path = tmp_path / "cams.txt"
    path.unlink(missing_ok=True)
    try:
        write_re10k(path, w2c, K, *size, url=url)
    except ValueError:
        assert not path.exists()
        return
    cams = read_re10k(path)  # must not raise
    assert len(cams) == 2 and torch.isfinite(cams.w2c).all()


@FAST
@given(text=st.text(alphabet="0123456789.-e naif\n", max_size=300))
def test_read_re10k_raises_only_value_errors(tmp_path, text):
    path = tmp_path / "cams.txt"
    path.write_text(text)
    try:
        cams = read_re10k(path, mirrored="relative")
    except ValueError:
        return
    assert torch.isfinite(cams.w2c).all() and (cams.intrinsics[:, :2] > 0).all()


@FAST
@given(fx=anyfloat, fy=anyfloat, h=st.integers(-1, 5), w=st.integers(-1, 5), t=st.tuples(anyfloat, anyfloat, anyfloat))
def test_plucker_rays_finite_or_value_error(fx, fy, h, w, t):
    w2c = torch.eye(4).repeat(1, 1, 1)
    w2c[0, :3, 3] = torch.tensor(t)
    K = make_intrinsics(fx, fy, 1.0, 1.0)[None]
    try:
        rays = plucker_rays(w2c, K, h, w)
    except ValueError:
        return
    assert rays.shape == (1, 6, h, w) and h > 0 and w > 0 and torch.isfinite(rays).all()


@pytest.fixture(scope="module")
def sample():
    return encode_clip(_clip(size=8).unbatch()[0])


@settings(max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(["video.npy", "w2c.npy", "tracks.npy", "json"]), pos=st.integers(0, 400),
       junk=st.binary(min_size=1, max_size=16), cut=st.booleans())
def test_decode_clip_raises_only_shard_errors(sample, field, pos, junk, cut):
    data = sample[field]
    pos = min(pos, len(data))
    mutated = data[:pos] if cut else data[:pos] + junk + data[pos + len(junk):]
    try:
        clip = decode_clip({**sample, field: mutated})
    except ShardError:
        return
    assert clip.video.shape[-2:] == (8, 8)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 20000), flip=st.integers(0, 20000))
def test_iter_shard_never_raises_on_damaged_tars(tmp_path, sample, cut, flip):
    path = tmp_path / "shard.tar"
    _write_tar(path, [sample, sample])
    data = bytearray(path.read_bytes())
    if flip < len(data):
        data[flip] ^= 0xFF
    path.write_bytes(bytes(data[: max(cut, 512)]))
    stats = ReadStats()
    clips = list(iter_shard(path, stats))
    assert stats.clips == len(clips) <= 2


@settings(max_examples=60, deadline=None, derandomize=True)
@given(key=st.sampled_from(["lr", "data", "data.seed", "data.frames", "max_steps", "flow_shift", "tasks",
                            "tracking.layers", "checkpoint_every", "ema_decay", "data.frames.x", "tracking",
                            "track2view.conditioner", "track2view.conditioner.width", "track2view.conditioner.blocks",
                            "cvd.epipolar", "cvd.epipolar.band", "cvd.epipolar.decay", "data.layouts"]),
       value=st.one_of(st.integers(-3, 3), st.floats(allow_nan=True), st.text(max_size=5), st.booleans(),
                       st.lists(st.integers(-2, 2), max_size=2), st.none()))
def test_config_overrides_raise_only_value_errors(key, value):
    try:
        TrainConfig.from_yaml(TINY, [f"{key}={json.dumps(value)}"])
    except ValueError as e:
        assert "\n" not in str(e) and (key.split(".")[0] in str(e) or "--set" in str(e)), str(e)
