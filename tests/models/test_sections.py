import inspect
from pathlib import Path

import pytest

from mvtrack.models import MultiViewTransformer, build_model
from mvtrack.models.epipolar import check_epipolar_config
from mvtrack.models.sections import EpipolarConfig, TrackConditionerConfig
from mvtrack.models.track_conditioner import TrackConditioner


def test_sections_are_the_constructors_keyword_arguments():
    """A new keyword of TrackConditioner or of the epipolar attention must be a config field too (and back)."""
    own = {"dim", "in_channels", "patch_size", "num_blocks"}  # the backbone's sizes, not a config's
    conditioner = set(inspect.signature(TrackConditioner).parameters) - own
    assert set(TrackConditionerConfig.__dataclass_fields__) - {"CONFIG_PATH"} == conditioner
    defaults = {k: p.default for k, p in inspect.signature(TrackConditioner).parameters.items() if k not in own}
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in defaults.items()} == TrackConditionerConfig().kwargs()
    assert EpipolarConfig().kwargs().keys() == check_epipolar_config({}, 4).keys()
    filled = check_epipolar_config(EpipolarConfig().kwargs(), 4)
    assert {k: filled[k] for k in filled if k != "blocks"} == {k: v for k, v in EpipolarConfig().kwargs().items()
                                                              if k != "blocks"}


def test_section_errors_name_the_key():
    with pytest.raises(ValueError, match=r"cvd.epipolar.mode: expected one of module, processor, got 'dense'"):
        EpipolarConfig(mode="dense")
    with pytest.raises(ValueError, match=r"track2view.conditioner.blocks\[1\]: expected block indices >= 0"):
        TrackConditionerConfig(blocks=[0, -1])


def test_the_model_takes_the_config_objects_and_records_them_in_full(tmp_path):
    """MultiViewTransformer takes a section object or its mapping, checked alike; config.json holds every setting,
    so a saved model states what it was built with."""
    from mvtrack.training import TrainConfig

    given = {"blocks": [0], "width": 32, "layers": 1, "heads": 2}
    settings = TrackConditionerConfig(**given)
    a = build_model("tiny", track_conditioner=settings, epipolar=EpipolarConfig(blocks=[1]))
    b = build_model("tiny", track_conditioner=given, epipolar={"blocks": [1]})
    assert dict(a.config.track_conditioner) == dict(b.config.track_conditioner) == settings.kwargs()
    assert dict(a.config.epipolar) == EpipolarConfig(blocks=[1]).kwargs() and a.cross_view is not None
    a.save_pretrained(tmp_path)
    assert dict(MultiViewTransformer.from_pretrained(tmp_path).config.track_conditioner) == settings.kwargs()
    tiny = Path(__file__).resolve().parents[2] / "configs" / "camera_only_tiny.yaml"
    config = TrainConfig.from_yaml(tiny, ["track2view.conditioner={blocks: [0], width: 32, layers: 1, heads: 2}"])
    assert config.track2view.conditioner == settings  # the object the YAML gives is the one the model takes


def test_the_constructor_names_a_bad_setting_by_its_key():
    with pytest.raises(ValueError, match=r"^track_conditioner.width: expected an integer, got 'wide'$"):
        build_model("tiny", track_conditioner={"width": "wide"})
    with pytest.raises(ValueError, match=r"^track_conditioner: unknown keys \['widht'\]"):
        build_model("tiny", track_conditioner={"widht": 32})
    with pytest.raises(ValueError, match=r"^epipolar.band: expected a number >= 0 \(tokens\), got -1"):
        build_model("tiny", epipolar={"band": -1})
