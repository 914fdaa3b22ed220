import json

from mvtrack.api import load_pipeline
from mvtrack.models import build_model
from mvtrack.runners.analysis import NO_MOTION_ROW, zero_shot_tracking


def test_each_clip_setting_keeps_its_own_no_motion_row(tmp_path):
    """Two models sampled at different sizes are scored on different clips; each keeps its reference row (one model's
    used to overwrite the other's)."""
    small = tmp_path / "small"
    build_model("tiny").save_pretrained(small)
    (small / "mvtrack.json").write_text(json.dumps({"data": {"views": 2, "frames": 3, "height": 16, "width": 16}}))
    big = tmp_path / "big"
    build_model("tiny").save_pretrained(big)
    (big / "mvtrack.json").write_text(json.dumps({"data": {"views": 2, "frames": 3, "height": 32, "width": 32}}))
    pipes = {str(p): load_pipeline(p, "cpu", "float32") for p in (small, big)}
    rows = zero_shot_tracking(pipes, clips=1)
    assert set(rows) == {str(small), str(big), "no motion (2 views x 3 frames, 16x16)",
                         "no motion (2 views x 3 frames, 32x32)"}
    assert rows["no motion (2 views x 3 frames, 16x16)"] != rows["no motion (2 views x 3 frames, 32x32)"]
    same = zero_shot_tracking({str(small): pipes[str(small)]}, clips=1)
    assert set(same) == {str(small), NO_MOTION_ROW}
