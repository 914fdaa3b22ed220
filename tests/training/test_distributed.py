"""The trainer under `accelerate launch` with two CPU processes (gloo) and the shipped configs/accelerate files: FSDP2
shards every method's trained parameters (tracking head included), accumulates through Accelerate, checkpoints
per rank and resumes bit-exactly, also in one process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mvtrack.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "camera_only_tiny.yaml"
BASE = ["log_every=2", "max_steps=4", "checkpoint_every=2", "grad_accum=2", "batch_size=1", "data.frames=2",
        "data.height=32", "data.width=32", "data.num_tracks=32"]
METHODS = {
    "camera_only": [],
    "mvtrack4gen": ["tracking={layers: [0, 1], pairs: 16}"],
    "track4gen": ["tracking={refiner_block: 1, pairs: 16}"],
    "track2view": ["track2view.conditioner={blocks: [0], width: 16, layers: 1, heads: 2, bands: 2}"],
    "cvd": ["cvd.epipolar={mode: module, blocks: [1], band: 1.5}", "cvd.pseudo_fraction=0.5"],
}

# Runs in each launched process: for every method, an uninterrupted run, a run killed during step 3 and its resume;
# rank 0 writes the full (gathered) weights and EMA of both at step 4 and prints what the prepared model is.
SCRIPT = """
import json, sys, torch
from safetensors.torch import save_file
from torch.distributed.fsdp import FSDPModule
from torch.distributed.tensor import DTensor
from mvtrack.training import TrainConfig, Trainer

out, methods = sys.argv[1], json.loads(sys.argv[2])

def full(trainer):
    params = list(trainer.unwrapped.parameters())
    if trainer.strategy == "deepspeed":
        import deepspeed
        gathered = deepspeed.zero.GatheredParameters(params)  # ZeRO-3's partitions, whole (a no-op below)
    else:
        import contextlib
        gathered = contextlib.nullcontext()
    with gathered:
        weights = {k: (v.full_tensor() if isinstance(v, DTensor) else v).detach().clone()
                   for k, v in trainer.unwrapped.state_dict().items()}
    # each rank's own averages (FSDP2: gathered; ZeRO-3: this rank's partitions)
    ema = {k: v.full_tensor() if isinstance(v, DTensor) else v.clone() for k, v in trainer.ema.shadow.items()}
    return {**{"model." + k: v for k, v in weights.items()}, **{"ema." + k: v for k, v in ema.items()}}

for name, overrides in methods.items():
    config = lambda run: TrainConfig.from_yaml(sys.argv[3], [f"output_dir={out}/{name}/{run}", *overrides])
    whole = Trainer(config("whole"))
    whole.train()
    killed = Trainer(config("split"))
    step_fn = killed.micro_step
    def crash(s, micro):
        if s == 2:
            raise KeyboardInterrupt
        return step_fn(s, micro)
    killed.micro_step = crash
    try:
        killed.train()
    except KeyboardInterrupt:
        pass
    resumed = Trainer(config("split"))
    start = resumed.start_step
    resumed.train()
    a, b = full(whole), full(resumed)
    acc = whole.accelerator
    diff = torch.tensor(max(float((a[k] - b[k]).abs().max()) for k in a))
    same_keys = sorted(a) == sorted(b)
    torch.distributed.all_reduce(diff, op=torch.distributed.ReduceOp.MAX)  # every rank's averages
    params = dict(whole.model.named_parameters())
    sharded = [k for k, p in params.items() if isinstance(p, DTensor) and p.to_local().numel() < p.numel()]
    sharded += [k for k, p in params.items() if getattr(p, "ds_tensor", None) is not None and p.ds_tensor.numel() < p.ds_numel]
    blocks = sum(isinstance(m, FSDPModule) for m in whole.unwrapped.wan.blocks)
    steps = getattr(whole.model, "global_steps", None)  # DeepSpeed: optimizer steps its engine took
    if whole.strategy == "deepspeed":  # the whole averages, gathered by DeepSpeed itself from the partitions
        whole.ema.copy_to(whole.unwrapped)
        a.update({"emafull." + k[6:]: v for k, v in full(whole).items() if k.startswith("model.")})
    if acc.is_main_process:
        save_file({k: v.contiguous() for k, v in a.items()}, f"{out}/{name}/whole.safetensors")
        row = {"name": name, "strategy": whole.strategy, "world": acc.num_processes, "root": isinstance(whole.model, FSDPModule),
               "blocks": blocks, "sharded": sharded, "start": start, "trainable": len(whole.trainable),
               "diff": float(diff), "keys": same_keys, "engine_steps": steps}
        print("RESULT " + json.dumps(row), flush=True)
acc.end_training()
"""


def launch(tmp_path: Path, config_file: str, methods: dict, timeout: int = 900) -> list[dict]:
    """Run SCRIPT under ``accelerate launch --config_file configs/accelerate/<config_file>`` with 2 CPU processes."""
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(ROOT / "configs" / "accelerate" / config_file), "--num_processes", "2", "--mixed_precision", "no",
           str(script), str(tmp_path / "runs"), json.dumps({k: BASE + v for k, v in methods.items()}), str(TINY)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return [json.loads(x[7:]) for x in done.stdout.splitlines() if x.startswith("RESULT ")]


@pytest.mark.slow
def test_fsdp2_shards_every_method_and_resumes_exactly(tmp_path):
    """configs/accelerate/fsdp2.yaml on 2 gloo processes: the root module and every Wan block are FSDP units whose
    parameters are split between the ranks (the tracking head's too); a run killed during step 3 and resumed from
    its step-2 checkpoint ends bit-identical to an uninterrupted one (weights and EMA), with 2 micro-batches per step."""
    rows = launch(tmp_path, "fsdp2.yaml", METHODS)
    assert [r["name"] for r in rows] == list(METHODS)
    for r in rows:
        assert (r["strategy"], r["world"], r["root"], r["blocks"]) == ("fsdp2", 2, True, 2), r
        assert any(k.startswith("model.wan.blocks.") for k in r["sharded"]), r
        assert r["start"] == 2 and r["keys"] and r["diff"] == 0.0, r
    head = next(r for r in rows if r["name"] == "mvtrack4gen")
    assert any(k.startswith("supervision.head.") for k in head["sharded"])  # trained under FSDP with the model
    # every rank wrote its own shards
    state = tmp_path / "runs" / "mvtrack4gen" / "whole" / "checkpoints" / "step_000004" / "state"
    assert len(list(state.glob("*.safetensors"))) == 2
    # resume on another number of processes: the 2-rank checkpoint loads into one process exactly
    for name in ("camera_only", "mvtrack4gen"):
        run = tmp_path / "runs" / name / "whole"
        saved = json.loads((run / "config.json").read_text())
        one = Trainer(TrainConfig.from_dict(saved))
        assert one.strategy == "single" and one.start_step == 4
        expected = load_file(tmp_path / "runs" / name / "whole.safetensors")
        for k, v in one.unwrapped.state_dict().items():
            assert torch.equal(v, expected["model." + k]), k
        for k, v in one.ema.shadow.items():
            assert torch.equal(v, expected["ema." + k]), k


def _deepspeed_runs() -> bool:
    try:
        import deepspeed  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.skipif(not _deepspeed_runs(), reason="deepspeed is not installed (pip install deepspeed)")
@pytest.mark.parametrize("config_file", ["zero2.yaml", "zero3_offload.yaml"])
def test_deepspeed_accumulates_and_resumes_exactly(tmp_path, config_file):
    """configs/accelerate/zero2.yaml and zero3_offload.yaml on 2 gloo processes (DeepSpeed's CPU accelerator): one
    engine step per optimizer step over 2 micro-batches, the tracking head inside the engine, and a run killed during
    step 3 resumed bit-exactly from DeepSpeed's checkpoint; ``export`` rebuilds the full EMA without DeepSpeed."""
    from mvtrack.training.checkpoint import read_weights

    methods = {k: METHODS[k] for k in ("camera_only", "mvtrack4gen")}
    rows = launch(tmp_path, config_file, methods)
    assert [r["name"] for r in rows] == list(methods)
    for r in rows:
        assert (r["strategy"], r["world"], r["engine_steps"]) == ("deepspeed", 2, 4), r
        assert r["start"] == 2 and r["keys"] and r["diff"] == 0.0, r
    if config_file.startswith("zero3"):  # every weight partitioned, the tracking head's too
        assert any("model.wan.blocks." in k for k in rows[0]["sharded"])
        assert any("supervision.head." in k for k in rows[1]["sharded"])
    for name in methods:
        expected = load_file(tmp_path / "runs" / name / "whole.safetensors")
        ema, _ = read_weights(tmp_path / "runs" / name / "whole" / "checkpoints" / "step_000004")
        assert set(ema) == {k[4:] for k in expected if k.startswith("ema.")}
        for k, v in ema.items():
            assert torch.equal(v, expected["emafull." + k]), k
