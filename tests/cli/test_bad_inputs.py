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
from mvtrack.data.source import FOV_RANGE, default_intrinsics
from mvtrack.devices import resolve_device
from mvtrack.geometry import look_at, make_intrinsics, plucker_rays, read_re10k, write_re10k
from mvtrack.geometry.formats import FOCAL_RANGE, MAX_TRANSLATION, PRINCIPAL_RANGE
from mvtrack.geometry.trajectories import SPEC_RANGES, from_spec
from mvtrack.models.presets import build_model
from mvtrack.models.pretrained import check_config_types
from mvtrack.models.transformer import MultiViewTransformer
from mvtrack.runners.bench import BenchConfig
from mvtrack.scenes import SynthConfig, render_clips
from mvtrack.training import TrainConfig
from mvtrack.viz import to_uint8_frames, write_mp4

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
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


def _with_field(src: Path, dst: Path, field: str, value: str) -> None:
    """Copy a RealEstate10K file with one field of its first camera (line 2) replaced by ``value``."""
    columns = ["timestamp", "fx", "fy", "cx", "cy", "k1", "k2", "r11", "r12", "r13", "t1", "r21", "r22", "r23", "t2",
               "r31", "r32", "r33", "t3"]
    lines = src.read_text().splitlines()
    parts = lines[1].split()
    parts[columns.index(field)] = value
    dst.write_text("\n".join([lines[0], " ".join(parts), *lines[2:]]) + "\n")


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def _cameras_changed(members: dict[str, bytes], field: str, change) -> dict[str, bytes]:
    array = np.load(io.BytesIO(members[f"{field}.npy"]))
    return {**members, f"{field}.npy": _npy(change(array.copy()))}


def _scaled_rotation(w2c):
    w2c[0, 1, :3, :3] *= 1.5
    return w2c


def _sheared(w2c):
    w2c[1, 0, 0, 1] += 0.3
    return w2c


def _mirrored(w2c):
    w2c[..., :3, 2] *= -1
    return w2c


def _projective(w2c):
    w2c[0, 0, 3, 2] = 0.1
    return w2c


def _negative_focal(K):
    K[1, 1, 0, 0] *= -1
    return K


HOSTILE_SAMPLES = {
    "npy header claims 447 GiB": lambda m: {**m, "video.npy": _npy_header((4, 10000, 2000, 2000, 3)) + b"\0" * 64},
    "npy header of another rank": lambda m: {**m, "video.npy": _npy_header((2, 2)) + b"\0" * 4},
    "npy of strings": lambda m: {**m, "w2c.npy": _npy_header((2, 2, 4, 4), "<U8") + b"\0" * 2048},
    "json fields 5": lambda m: {**m, "json": b'{"fields": 5}'},
    "json a list": lambda m: {**m, "json": b"[1, 2]"},
    "json index abc": lambda m: {**m, "json": json.dumps({"fields": json.loads(m["json"])["fields"],
                                                          "meta": {"index": "abc"}}).encode()},
    "json not json": lambda m: {**m, "json": b"{nope"},
    # cameras that are not rigid transforms (issue 24: drawn without a word)
    "w2c scaled rotation": lambda m: _cameras_changed(m, "w2c", _scaled_rotation),
    "w2c sheared": lambda m: _cameras_changed(m, "w2c", _sheared),
    "w2c mirrored (det -1)": lambda m: _cameras_changed(m, "w2c", _mirrored),
    "w2c projective last row": lambda m: _cameras_changed(m, "w2c", _projective),
    "K negative focal": lambda m: _cameras_changed(m, "K", _negative_focal),
}

# (file name, field, value): one field of a camera file outside its range (docs/data.md), fresh values around the
# edges: focal lengths fx/W, fy/H in [0.001, 1000], principal points cx/W, cy/H in [-1, 2], |t| <= 1e6
CAMERA_FIELD_CASES = [
    ("fx_low", "fx", "0.0009"),
    ("fy_underflow", "fy", "3e-46"),  # 0 in float32: used to end in a LinAlgError traceback
    ("fx_high", "fx", "1000.01"),
    ("cx_left", "cx", "-1.25"),
    ("cy_below", "cy", "2.0001"),
    ("cx_far", "cx", "7e5"),
    ("t_far", "t2", "-1000000.5"),
    ("t_overflow", "t3", "5e38"),  # inf in float32: used to give "w2c: contains NaN or inf" without the file
]

READER_NAMES = {"t1": "w2c[0,3]", "t2": "w2c[1,3]", "t3": "w2c[2,3]"}  # how read_re10k names the columns

# (model directory, key path in config.json, value of the wrong type)
MODEL_CONFIG_CASES = [
    ("cfg_layers_float", ("wan_config", "num_layers"), 2.5),
    ("cfg_patch_strings", ("wan_config", "patch_size"), ["1", "4", "4"]),
    ("cfg_heads_bool", ("wan_config", "num_attention_heads"), True),
    ("cfg_min_sigma_text", ("min_sigma",), "small"),
    ("cfg_conditioner_list", ("track_conditioner",), [4]),
]

_GROUP = "groups: [{name: a, clips: 1}]\n"
BENCH_CONFIGS = {
    "bench_clips_word": "name: x\ngroups: [{name: a, clips: three}]\n",
    "bench_clips_float": "name: x\ngroups: [{name: a, clips: 1.5}]\n",
    "bench_groups_int": "name: x\ngroups: 7\n",
    "bench_groups_ints": "name: x\ngroups: [3, 4]\n",
    "bench_group_key": "name: x\ngroups: [{name: a, clips: 1, colour: red}]\n",
    "bench_views_one": "name: x\nviews: 1\n" + _GROUP,
    "bench_height_huge": "name: x\nheight: 40000\n" + _GROUP,
    "bench_seed_negative": "name: x\nseed: -2\n" + _GROUP,
    "bench_dynamic_word": "name: x\ngroups: [{name: a, clips: 1, dynamic: sometimes}]\n",
    "bench_motions_string": "name: x\ncamera_motions: orbit\n" + _GROUP,
    "bench_method_steps": "split: {name: x, groups: [{name: a, clips: 1}]}\nmethods: [{name: m, model: tiny, "
                          "steps: many}]\n",
    "bench_method_key": "split: {name: x, groups: [{name: a, clips: 1}]}\nmethods: [{name: m, model: tiny, "
                        "seed: 1}]\n",
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

    # camera files with one field of their first camera line (line 2) outside its documented range
    for name, field, value in CAMERA_FIELD_CASES:
        _with_field(root / "src.txt", root / f"{name}.txt", field, value)
    # model configs whose values have the wrong type
    for name, path, value in MODEL_CONFIG_CASES:
        broken = json.loads(json.dumps(config))
        *parents, leaf = path
        target = broken
        for p in parents:
            target = target[p]
        target[leaf] = value
        variant(name, json.dumps(broken))

    # configs
    (root / "syntax.yaml").write_text("model: tiny\ndata: {views: 2,\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    for name, text in BENCH_CONFIGS.items():
        (root / f"{name}.yaml").write_text(text)
    (root / "bench_ok.yaml").write_text("name: ok\nheight: 16\nwidth: 16\nframes: 2\n" + _GROUP)

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
    ("model config.json wrong type", lambda w: _gen(w, model="typed_config"), ["config.json",
                                                                               "wan_config.num_layers: expected an "
                                                                               "integer, got 'two'"]),
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
    ("generate --fov 0", lambda w: _gen(w, "--fov", "0"), ["--fov", "[1, 179]"]),
    ("generate --fov 180", lambda w: _gen(w, "--fov", "180"), ["--fov", "[1, 179]"]),
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
    # issue 24: numbers with a documented range. Trajectory amounts (geometry/trajectories.py SPEC_RANGES)
    ("generate --target orbit:360.5", lambda w: _gen(w, "--target", "orbit:360.5"), ["--target orbit:360.5",
                                                                                    "[-360, 360]"]),
    ("generate --target pan:-2e4", lambda w: _gen(w, "--target", "pan:-2e4"), ["--target pan:-2e4", "[-360, 360]"]),
    ("generate --target arc:90.001", lambda w: _gen(w, "--target", "arc:90.001"), ["arc:90.001", "[-90, 90]"]),
    ("generate --target tilt:-91", lambda w: _gen(w, "--target", "tilt:-91"), ["tilt:-91", "[-90, 90]"]),
    ("generate --target dolly:-250", lambda w: _gen(w, "--target", "dolly:-250"), ["dolly:-250", "[-100, 100]"]),
    ("generate --target dolly:1e300", lambda w: _gen(w, "--target", "dolly:1e300"), ["dolly:1e300", "[-100, 100]"]),
    ("generate --target random:-0.01", lambda w: _gen(w, "--target", "random:-0.01"), ["random:-0.01", "[0, 100]"]),
    ("generate --target random:101", lambda w: _gen(w, "--target", "random:101"), ["random:101", "[0, 100]"]),
    ("generate --target orbit:-inf", lambda w: _gen(w, "--target", "orbit:-inf"), ["--target orbit:-inf", "finite"]),
    ("generate --target tilt:NaN", lambda w: _gen(w, "--target", "tilt:NaN"), ["--target tilt:NaN", "finite"]),
    # camera-file fields, as --cameras and as --target files: the file and line are named
    *[(f"generate --cameras {field}={value}", lambda w, n=name: _gen(w, "--cameras", w / f"{n}.txt"),
       [f"{name}.txt:2", f"field {READER_NAMES.get(field, field)} = {float(value):.10g}: expected"])
      for name, field, value in CAMERA_FIELD_CASES],
    *[(f"generate --target file {field}={value}", lambda w, n=name: _gen(w, "--target", w / f"{n}.txt"),
       [f"{name}.txt:2", "expected"]) for name, field, value in CAMERA_FIELD_CASES[::2]],
    # the field of view of a source without a camera file: [1, 179] degrees
    ("generate --fov 1e-9", lambda w: _gen(w, "--fov", "1e-9"), ["--fov", "[1, 179]"]),
    ("generate --fov 0.99", lambda w: _gen(w, "--fov", "0.99"), ["--fov", "[1, 179]"]),
    ("generate --fov 179.01", lambda w: _gen(w, "--fov", "179.01"), ["--fov", "[1, 179]"]),
    ("generate --fov -inf", lambda w: _gen(w, "--fov", "-inf"), ["--fov", "[1, 179]"]),
    ("tracks --fov 250", lambda w: ["tracks", "--video", w / "src.mp4", "--out", w / "t.npz", "--fov", "250"],
     ["--fov", "[1, 179]"]),
    # devices, checked against this machine (a CPU-only one in CI; the CUDA cases are skipped on a GPU machine)
    pytest.param("generate --device cuda:0", lambda w: _gen(w, "--device", "cuda:0"),
                 ["--device cuda:0", "CUDA is not available"], marks=NO_CUDA),
    ("generate --device gpu", lambda w: _gen(w, "--device", "gpu"), ["--device gpu", "auto, cpu, cuda or cuda:N"]),
    ("generate --device cpu:1", lambda w: _gen(w, "--device", "cpu:1"), ["--device cpu:1", "auto, cpu, cuda"]),
    pytest.param("synth --device cuda", lambda w: ["synth", "--out", w / "s", "--num", "1", "--size", "16",
                                                   "--device", "cuda"], ["--device cuda", "CUDA is not available"],
                 marks=NO_CUDA),
    ("synth --device Cuda", lambda w: ["synth", "--out", w / "s", "--num", "1", "--size", "16", "--device", "Cuda"],
     ["--device Cuda", "expected auto, cpu, cuda or cuda:N"]),
    pytest.param("set data.render_device=cuda", lambda w: _train(w, "data.render_device=cuda"),
                 ["data.render_device cuda", "CUDA is not available"], marks=NO_CUDA),
    ("set data.render_device=tpu", lambda w: _train(w, "data.render_device=tpu"), ["data.render_device tpu",
                                                                                 "expected auto, cpu"]),
    pytest.param("set text.device=cuda:1", lambda w: _train(w, "text.device=cuda:1"),
                 ["text.device cuda:1", "CUDA is not available"], marks=NO_CUDA),
    pytest.param("encode --device cuda", lambda w: ["encode", "--model", w / "tiny", "--source", w / "shards",
                                                    "--out", w / "enc", "--device", "cuda"],
                 ["--device cuda", "CUDA is not available"], marks=NO_CUDA),
    # bench configs with wrong types or values out of range: the file and the key path are named
    ("bench clips: three", lambda w: _bench(w, "bench_clips_word"), ["bench_clips_word.yaml",
                                                                    "BenchConfig.groups[0].clips", "integer"]),
    ("bench clips: 1.5", lambda w: _bench(w, "bench_clips_float"), ["BenchConfig.groups[0].clips", "integer"]),
    ("bench groups: 7", lambda w: _bench(w, "bench_groups_int"), ["BenchConfig.groups", "a list"]),
    ("bench groups: [3, 4]", lambda w: _bench(w, "bench_groups_ints"), ["BenchConfig.groups[0]", "mapping"]),
    ("bench group key colour", lambda w: _bench(w, "bench_group_key"), ["BenchConfig.groups[0]", "colour"]),
    ("bench views: 1", lambda w: _bench(w, "bench_views_one"), ["BenchConfig.views", "[2, 64]"]),
    ("bench height: 40000", lambda w: _bench(w, "bench_height_huge"), ["BenchConfig.height", "[8, 4096]"]),
    ("bench seed: -2", lambda w: _bench(w, "bench_seed_negative"), ["BenchConfig.seed", "[0, 4294967295]"]),
    ("bench dynamic: sometimes", lambda w: _bench(w, "bench_dynamic_word"), ["groups[0].dynamic", "true or false"]),
    ("bench camera_motions: orbit", lambda w: _bench(w, "bench_motions_string"), ["BenchConfig.camera_motions"]),
    ("bench methods steps: many", lambda w: _bench(w, "bench_method_steps"), ["bench_method_steps.yaml",
                                                                              "methods[m].steps", "integer"]),
    ("bench methods key seed", lambda w: _bench(w, "bench_method_key"), ["methods[0]", "'seed'"]),
    # model configs with a wrong type: the file and the key path are named
    *[(f"model config.json {'.'.join(path)}", lambda w, n=name: _gen(w, model=n),
       ["config.json", f"{'.'.join(path)}: expected"]) for name, path, _ in MODEL_CONFIG_CASES],
    # an output path that is an existing file (or lies under one): one line naming the option, before any work
    ("synth --out a file", lambda w: ["synth", "--out", w / "afile", "--num", "1", "--size", "16"],
     ["--out", "afile", "not a directory"]),
    ("demo --out a file", lambda w: ["demo", "--model", w / "tiny", "--out", w / "afile", "--clips", "1",
                                     "--steps", "1"], ["--out", "afile", "not a directory"]),
    ("bench --out under a file", lambda w: ["bench", "--config", w / "bench_ok.yaml", "--method", "copy_source",
                                            "--out", w / "afile" / "b"], ["--out", "afile", "is a file"]),
    ("eval --out a file", lambda w: ["eval", "--pred", w / "shards", "--gt", w / "shards", "--out", w / "afile"],
     ["--out", "afile"]),
    ("analyze-layers --out a file", lambda w: ["analyze-layers", "--model", w / "tiny", "--out", w / "afile",
                                               "--clips", "1"], ["--out", "afile", "not a directory"]),
    ("track-features --out under a file", lambda w: ["track-features", "--model", w / "tiny", "--clips", "1",
                                                     "--out", w / "afile" / "s.json"], ["--out", "afile"]),
    ("tracks --out under a file", lambda w: ["tracks", "--video", w / "src.mp4", "--out", w / "afile" / "t.npz"],
     ["--out", "afile"]),
    ("encode --out a file", lambda w: ["encode", "--model", w / "tiny", "--source", w / "shards", "--out",
                                       w / "afile", "--device", "cpu"], ["--out", "afile", "not a directory"]),
    ("viz --out a file", lambda w: ["viz", w / "shards", "--out", w / "afile"], ["--out", "afile"]),
    # numbers typed on the command line: seeds are 32-bit, steps at most 1000, frame rates at most 240, ...
    ("generate --seed 2^32", lambda w: _gen(w, "--seed", str(2**32)), ["--seed", "4294967295"]),
    ("generate --seed -1", lambda w: _gen(w, "--seed", "-1"), ["--seed", "0"]),
    ("generate --guidance-scale nan", lambda w: _gen(w, "--guidance-scale", "nan"), ["--guidance-scale"]),
    ("generate --guidance-scale -3", lambda w: _gen(w, "--guidance-scale", "-3"), ["--guidance-scale"]),
    ("generate --fps 1000", lambda w: _gen(w, "--fps", "1000"), ["--fps", "240"]),
    ("generate --steps 1001", lambda w: _gen(w, "--steps", "1001"), ["--steps", "1000"]),
    ("demo --frames 0", lambda w: ["demo", "--model", w / "tiny", "--out", w / "d", "--frames", "0"], ["--frames"]),
    ("bench --seed 2^40", lambda w: ["bench", "--config", w / "bench_ok.yaml", "--checkpoint", w / "tiny", "--seed",
                                     str(2**40), "--out", w / "b"], ["--seed", "4294967295"]),
    ("synth --views 65", lambda w: ["synth", "--views", "65", "--out", w / "s"], ["SynthConfig.views", "[1, 64]"]),
    ("synth --tracks 70000", lambda w: ["synth", "--tracks", "70000", "--out", w / "s"], ["SynthConfig.num_tracks",
                                                                                        "[1, 65536]"]),
    ("synth --size 9000x16", lambda w: ["synth", "--size", "9000x16", "--out", w / "s"], ["SynthConfig.height",
                                                                                        "[1, 8192]"]),
    ("synth --photo-prob 1.5", lambda w: ["synth", "--photo-prob", "1.5", "--out", w / "s"], ["--photo-prob"]),
    ("synth --seed -5", lambda w: ["synth", "--seed", "-5", "--out", w / "s"], ["--seed"]),
    ("track-features --threshold 2", lambda w: ["track-features", "--model", w / "tiny", "--threshold", "2"],
     ["--threshold"]),
    ("analyze-layers --views 0", lambda w: ["analyze-layers", "--model", w / "tiny", "--views", "0", "--out",
                                            w / "l"], ["--views"]),
    ("viz --scale 100", lambda w: ["viz", w / "shards", "--out", w / "v", "--scale", "100"], ["--scale", "16"]),
    # other commands
    ("synth --views 0", lambda w: ["synth", "--views", "0", "--out", w / "s"], ["SynthConfig.views"]),
    ("synth --size 0", lambda w: ["synth", "--size", "0", "--out", w / "s"], ["positive integers"]),
    ("viz missing source", lambda w: ["viz", w / "missing", "--out", w / "v"], ["missing", "neither a directory"]),
    ("export no checkpoint", lambda w: ["export", w / "tiny", "--out", w / "e"], ["no checkpoint"]),
]


def _gen(ws, *extra, model="tiny", video="src.mp4", out="gen"):
    return ["generate", "--model", ws / model, "--video", ws / video, "--out", ws / out, "--steps", "1", *extra]


def _bench(ws, name):
    return ["bench", "--config", ws / f"{name}.yaml", "--method", "copy_source", "--out", ws / "bench"]


def _snapshot(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime for p in root.rglob("*")}


def _params(cases):
    """CASES as pytest params: (id, make_args, needles), or a pytest.param of those with marks."""
    return [pytest.param(*c.values[1:], marks=c.marks, id=c.values[0]) if hasattr(c, "marks") else
            pytest.param(*c[1:], id=c[0]) for c in cases]


@pytest.mark.parametrize("make_args,needles", _params(CASES))
def test_bad_input_is_one_clear_line(ws, make_args, needles):
    """Exit 2, one ``error:`` line naming the input and what was expected, no traceback, and nothing written or
    deleted in the workspace (not even the --out directory created)."""
    before = _snapshot(ws)
    assert_one_line_error(invoke(make_args(ws)), *needles)
    assert _snapshot(ws) == before


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


# --------------------------------------------------------------------------------------------------------------
# Issue 24: every number a user can type has a documented range, accepted exactly within it and refused outside it
# with one error naming the source. Values are drawn across each range's edges (the edge, the next float beyond,
# far beyond, NaN, inf) and anywhere; the ranges are the library's own constants, so docs, code and tests agree.


def _around(lo: float, hi: float):
    """Floats across the edges of [lo, hi]: the edges, the nearest floats outside and inside, non-finite values,
    values just around the interval, and anything."""
    span = hi - lo
    return st.one_of(
        st.sampled_from([lo, hi, math.nextafter(lo, -math.inf), math.nextafter(hi, math.inf),
                         math.nextafter(lo, math.inf), math.nextafter(hi, -math.inf), float("nan"), float("inf"),
                         -float("inf"), 1e300, -1e300, 0.0]),
        st.floats(lo - span, hi + span, allow_nan=False),
        st.floats(allow_nan=False, allow_infinity=False),
    )


def _inside(value: float, lo: float, hi: float) -> bool:
    return math.isfinite(value) and lo <= value <= hi


EDGES = settings(max_examples=80, deadline=None, derandomize=True,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])


@EDGES
@given(data=st.data(), name=st.sampled_from(sorted(SPEC_RANGES)))
def test_trajectory_amounts_accepted_exactly_within_their_ranges(data, name):
    lo, hi, _ = SPEC_RANGES[name]
    value = data.draw(_around(lo, hi))
    spec = f"{name}:{value!r}"
    start = _rotation(1.0, 2.0, 3.0)[0]
    try:
        c2w = from_spec(spec, start, 3, generator=torch.Generator().manual_seed(0))
    except ValueError as e:
        assert not _inside(value, lo, hi), (spec, e)
        assert spec in str(e) and f"[{lo:g}, {hi:g}]" in str(e) and "\n" not in str(e)
        return
    assert _inside(value, lo, hi), spec
    assert torch.isfinite(c2w).all() and c2w.shape == (3, 4, 4)


CAMERA_FIELD_RANGES = {"fx": FOCAL_RANGE, "fy": FOCAL_RANGE, "cx": PRINCIPAL_RANGE, "cy": PRINCIPAL_RANGE,
                       "t1": (-MAX_TRANSLATION, MAX_TRANSLATION), "t3": (-MAX_TRANSLATION, MAX_TRANSLATION)}


@EDGES
@given(data=st.data(), field=st.sampled_from(sorted(CAMERA_FIELD_RANGES)), line=st.integers(0, 2))
def test_camera_file_fields_accepted_exactly_within_their_ranges(tmp_path, data, field, line):
    """Each field on any line: read iff within its documented range (focal lengths also at float32's underflow, the
    principal point far outside the frame, translations at float32's overflow), else an error naming file:line."""
    lo, hi = CAMERA_FIELD_RANGES[field]
    value = data.draw(st.one_of(_around(lo, hi), st.sampled_from([1e-45, 3e-39, 5e-324, 3.5e38, -3.5e38])))
    columns = ["timestamp", "fx", "fy", "cx", "cy", "k1", "k2", "r11", "r12", "r13", "t1", "r21", "r22", "r23", "t2",
               "r31", "r32", "r33", "t3"]
    good = "0 0.9 1.2 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0".split()
    rows = [list(good) for _ in range(3)]
    rows[line][columns.index(field)] = repr(value)
    path = tmp_path / "cams.txt"
    path.write_text("url\n" + "\n".join(" ".join(r) for r in rows) + "\n")
    try:
        cams = read_re10k(path)
    except ValueError as e:
        assert not _inside(value, lo, hi), (field, value, e)
        assert f"{path}:{line + 2}: field" in str(e) and "expected" in str(e), str(e)
        return
    assert _inside(value, lo, hi), (field, value)
    K = cams.K(16, 16)  # float32, as every command uses them
    assert torch.isfinite(cams.w2c).all() and torch.isfinite(torch.linalg.inv(K)).all()


@EDGES
@given(spec=st.one_of(st.text(max_size=8), st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "cuda:1", "cuda:12",
                                                            "cpu:0", "cpu:1", "CPU", " cpu", "cuda:-1", "cuda:",
                                                            "mps", "meta", "xla", "gpu", "cuda:99999", "0", ""])),
       name=st.sampled_from(["--device", "data.render_device", "text.device"]))
def test_device_strings_resolve_or_name_their_source(spec, name):
    try:
        device = resolve_device(spec, name)
    except ValueError as e:
        assert str(e).startswith((f"{name} {spec}: ", f"{name} {spec!r}: ")) and "\n" not in str(e)
        assert ("CUDA" in str(e) or "cuda" in str(e))
        if spec in ("cuda", "cuda:0") and not torch.cuda.is_available():
            assert "CUDA is not available on this machine" in str(e)
        return
    assert spec in ("auto", "cpu") or spec.startswith("cuda") and torch.cuda.is_available()
    assert device.type in ("cpu", "cuda")


_ANY = st.one_of(st.integers(-5, 10**5), st.floats(allow_nan=True), st.text(max_size=4), st.booleans(), st.none(),
                 st.lists(st.integers(-2, 5), max_size=3), st.dictionaries(st.sampled_from(["name", "clips", "x"]),
                                                                        st.integers(-1, 3), max_size=3))


@EDGES
@given(key=st.sampled_from(["seed", "views", "frames", "height", "width", "num_tracks", "camera_motions", "groups",
                            "observed", "name", "groups[0].clips", "groups[0].dynamic", "groups[0].baseline",
                            "groups[0]"]),
       value=st.one_of(_ANY, st.sampled_from([2**32, 2**32 - 1, 1, 8, 4096, 4097, 65, 64, 10000, 10001]),
                       _around(2, 64)))
def test_bench_config_values_raise_only_named_value_errors(key, value):
    """Any value of any key of a split: accepted, or one ValueError naming BenchConfig.<key> (never Python's own
    TypeError about comparing a str with an int)."""
    raw = {"name": "x", "groups": [{"name": "a", "clips": 1}]}
    if key.startswith("groups[0]."):
        raw["groups"][0][key.split(".")[1]] = value
    elif key == "groups[0]":
        raw["groups"] = [value]
    else:
        raw[key] = value
    try:
        BenchConfig(**raw)
    except ValueError as e:
        assert f"BenchConfig.{key.split('.')[0]}" in str(e) and "\n" not in str(e), (key, value, str(e))


_TINY_CONFIG = json.dumps(build_model("tiny").config)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


# what each key of a model's config.json must hold (MultiViewTransformer's and WanTransformer3DModel's signatures)
MODEL_KEY_TYPES = {
    ("wan_config", "num_layers"): _is_int,
    ("wan_config", "patch_size"): lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
    ("wan_config", "eps"): lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v),
    ("wan_config", "qk_norm"): lambda v: v is None or isinstance(v, str),
    ("wan_config", "cross_attn_norm"): lambda v: isinstance(v, bool),
    ("min_sigma",): lambda v: (_is_int(v) or isinstance(v, float)) and math.isfinite(v),
    ("camera_channels",): _is_int,
    ("track_conditioner",): lambda v: v is None or isinstance(v, dict),
    ("refiner_block",): lambda v: v is None or _is_int(v),
    ("wan_config",): lambda v: isinstance(v, dict),
}


@EDGES
@given(path=st.sampled_from(sorted(MODEL_KEY_TYPES)), value=_ANY)
def test_model_config_values_are_accepted_or_named(tmp_path, path, value):
    """Any JSON value under any key of a model's config.json: of the key's type it is accepted, else one error names
    the file and the key path before the model is built."""
    config = json.loads(_TINY_CONFIG)
    target = config
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    try:
        check_config_types(MultiViewTransformer, config, tmp_path / "config.json")
    except ValueError as e:
        assert not MODEL_KEY_TYPES[path](value), (path, value, e)
        assert f"config.json: {'.'.join(path)}: expected" in str(e) and "\n" not in str(e)
        return
    assert MODEL_KEY_TYPES[path](value), (path, value)


@EDGES
@given(fov=_around(*FOV_RANGE))
def test_field_of_view_accepted_exactly_within_its_range(fov):
    try:
        K = default_intrinsics(2, (16, 24), fov)
    except ValueError as e:
        assert not _inside(fov, *FOV_RANGE) and str(e).startswith(f"--fov {fov}: ") and "[1, 179]" in str(e)
        return
    assert _inside(fov, *FOV_RANGE) and torch.isfinite(torch.linalg.inv(K)).all()


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(view=st.integers(0, 1), frame=st.integers(0, 1), row=st.integers(0, 3), col=st.integers(0, 3),
       delta=st.one_of(st.floats(-2, 2, allow_nan=False), st.sampled_from([1e-9, 1e-4, 5e-3, 0.5])))
def test_shard_cameras_are_rigid_or_the_sample_is_skipped(sample, view, frame, row, col, delta):
    """Any one entry of a sample's w2c moved: the sample still decodes only if its cameras are rigid transforms."""
    w2c = np.load(io.BytesIO(sample["w2c.npy"])).copy()
    w2c[view, frame, row, col] += delta
    try:
        clip = decode_clip({**sample, "w2c.npy": _npy(w2c)})
    except ShardError as e:
        assert "field w2c" in str(e)
        return
    R = clip.w2c[..., :3, :3].double()
    assert (R.transpose(-1, -2) @ R - torch.eye(3, dtype=torch.float64)).abs().max() <= 1e-3
    assert torch.allclose(clip.w2c[..., 3, :], torch.tensor([0.0, 0, 0, 1]), atol=1e-6)


# the same through the command line, with fewer, slower examples: exit 2, one line naming the option, nothing written
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), name=st.sampled_from(sorted(SPEC_RANGES)))
def test_generate_refuses_targets_outside_their_range(ws, data, name):
    lo, hi, _ = SPEC_RANGES[name]
    value = data.draw(_around(lo, hi).filter(lambda v: not _inside(v, lo, hi)))
    spec = f"{name}:{value!r}"
    before = _snapshot(ws)
    assert_one_line_error(invoke(_gen(ws, "--target", spec)), f"--target {spec}", f"[{lo:g}, {hi:g}]")
    assert _snapshot(ws) == before


@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fov=_around(*FOV_RANGE).filter(lambda v: not _inside(v, *FOV_RANGE)))
def test_generate_refuses_fields_of_view_outside_their_range(ws, fov):
    before = _snapshot(ws)
    assert_one_line_error(invoke(_gen(ws, "--fov", repr(fov))), "--fov", "[1, 179]")
    assert _snapshot(ws) == before
