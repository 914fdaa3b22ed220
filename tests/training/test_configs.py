"""The shipped training configs: each parses, the experiment arms differ from their control only in the method they
name, and a model with a module the config does not state is refused (it would be trained unannounced)."""

from pathlib import Path

import pytest
import torch

from mvtrack.models import build_model as build_preset
from mvtrack.training import TrainConfig
from mvtrack.training.model import build_model

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# bench/: benchmark splits; accelerate/: `accelerate launch` configs
TRAINING = sorted(p for p in CONFIGS.rglob("*.yaml") if not {"bench", "accelerate"} & set(p.parts))
# experiment -> the keys an arm may change beside the control (camera_only.yaml)
EXPERIMENTS = {"track_cpu": {"tracking", "trainable"}, "track2view_cpu": {"track2view", "tracking"},
               "cvd_cpu": {"cvd"}}


@pytest.mark.parametrize("path", TRAINING, ids=[str(p.relative_to(CONFIGS)) for p in TRAINING])
def test_every_training_config_parses(path):
    TrainConfig.from_yaml(path)


@pytest.mark.parametrize("experiment", sorted(EXPERIMENTS))
def test_experiment_arms_differ_from_their_control_only_in_their_method(experiment):
    folder = CONFIGS / experiment
    control = TrainConfig.from_yaml(folder / "camera_only.yaml").to_dict()
    assert control["model"] == "outputs/camera_only_base"  # camera-only: no conditioner the arms do not state
    assert control["track2view"]["conditioner"] is None and control["cvd"]["epipolar"] is None
    for arm in sorted(folder.glob("*.yaml")):
        if arm.name == "camera_only.yaml":
            continue
        assert "base:" in arm.read_text(), f"{arm} repeats its control instead of stating what differs"
        config = TrainConfig.from_yaml(arm).to_dict()
        changed = {k for k in config if config[k] != control[k]} - {"output_dir"}
        assert changed and changed <= EXPERIMENTS[experiment], (arm, changed)


def _config(model: Path, *overrides: str) -> TrainConfig:
    return TrainConfig.from_yaml(CONFIGS / "camera_only_tiny.yaml", [f"model={model}", *overrides])


def test_a_module_the_config_does_not_state_is_refused(tmp_path):
    conditioned = tmp_path / "track2view"
    build_preset("tiny", track_conditioner={"blocks": [0], "width": 32, "layers": 1, "heads": 2}).save_pretrained(
        conditioned)
    with pytest.raises(ValueError, match=r"track2view.conditioner: .*track2view .*does not mention"):
        build_model(_config(conditioned))
    torch.manual_seed(0)
    model, _ = build_model(_config(conditioned, "track2view.conditioner={blocks: [0], width: 32, layers: 1, heads: 2}"))
    assert model.conditioner is not None  # stated: trained as Track2View, knowingly
    epipolar = tmp_path / "cvd"
    build_preset("tiny", epipolar={"mode": "module", "blocks": [1]}).save_pretrained(epipolar)
    with pytest.raises(ValueError, match="cvd.epipolar: .*does not mention"):
        build_model(_config(epipolar))
