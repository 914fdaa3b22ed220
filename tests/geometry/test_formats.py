import math
import re

import pytest
import torch

from mvtrack.geometry import axis_angle_to_matrix, make_intrinsics, read_re10k, write_re10k


def _cameras(T=5):
    R = axis_angle_to_matrix(torch.tensor([0.2, 1.0, 0.1]).expand(T, 3), torch.linspace(0, 0.5, T))
    w2c = torch.eye(4).repeat(T, 1, 1)
    w2c[:, :3, :3] = R
    w2c[:, :3, 3] = torch.linspace(-1, 1, T)[:, None] * torch.tensor([1.0, 0.2, 0.5])
    K = make_intrinsics(110.0, 112.0, 63.5, 47.5).expand(T, 3, 3)
    return w2c, K


def test_round_trip(tmp_path):
    w2c, K = _cameras()
    path = tmp_path / "cams.txt"
    write_re10k(path, w2c, K, height=96, width=128, url="https://example.com/v")
    cams = read_re10k(path)
    assert cams.url == "https://example.com/v" and len(cams) == 5
    torch.testing.assert_close(cams.w2c, w2c, atol=1e-7, rtol=0)
    torch.testing.assert_close(cams.K(96, 128), K.float(), atol=1e-4, rtol=0)
    torch.testing.assert_close(cams.intrinsics[0, 2:], torch.tensor([0.5, 0.5]))  # centre, edge-based


def _write_line(tmp_path, values):
    path = tmp_path / "bad.txt"
    path.write_text("url\n" + " ".join(str(v) for v in values) + "\n")
    return path


GOOD = [0, 0.9, 1.2, 0.5, 0.5, 0, 0] + [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]


def test_reads_a_valid_line(tmp_path):
    assert len(read_re10k(_write_line(tmp_path, GOOD))) == 1


def test_rejects_non_rotation(tmp_path):
    bad = list(GOOD)
    bad[7] = 2.0
    with pytest.raises(ValueError, match=r"bad.txt:2: w2c rotation: expected a rotation matrix"):
        read_re10k(_write_line(tmp_path, bad))


def test_rejects_nan(tmp_path):
    bad = list(GOOD)
    bad[12] = math.nan
    with pytest.raises(ValueError, match=r"bad.txt:2: field w2c\[1,1\] is nan, expected a finite number"):
        read_re10k(_write_line(tmp_path, bad))


def test_rejects_wrong_column_count(tmp_path):
    with pytest.raises(ValueError, match="bad.txt:2: expected 19 columns .* got 18"):
        read_re10k(_write_line(tmp_path, GOOD[:-1]))


def test_rejects_bad_focal_and_missing_file(tmp_path):
    bad = list(GOOD)
    bad[1] = -1
    with pytest.raises(ValueError, match=r"bad.txt:2: field fx = -1: expected a focal length in \[0.001, 1000\]"):
        read_re10k(_write_line(tmp_path, bad))
    with pytest.raises(FileNotFoundError, match="not found"):
        read_re10k(tmp_path / "nope.txt")


@pytest.mark.parametrize("index,value,needle", [
    (1, 0.00099, "field fx = 0.00099: expected a focal length in [0.001, 1000]"),
    (2, 1e-45, "field fy = 1e-45"),  # 0 in float32: K would be singular
    (1, 1000.5, "field fx = 1000.5"),
    (3, -1.01, "field cx = -1.01: expected a principal point in [-1, 2]"),
    (4, 2.5, "field cy = 2.5"),
    (10, 1.5e6, "field w2c[0,3] = 1500000: expected a translation of magnitude <= 1e+06"),
    (18, -3e38, "field w2c[2,3] = -3e+38"),  # inf in float32
    (0, 1e19, "field timestamp = 1e+19"),
])
def test_rejects_fields_outside_their_ranges(tmp_path, index, value, needle):
    bad = list(GOOD)
    bad[index] = value
    with pytest.raises(ValueError, match=r"bad.txt:2: " + re.escape(needle)):
        read_re10k(_write_line(tmp_path, bad))
    # the edges themselves are read
    for edge in {1: (1e-3, 1e3), 2: (1e-3, 1e3), 3: (-1, 2), 4: (-1, 2), 10: (-1e6, 1e6), 18: (-1e6, 1e6),
                 0: (-(2**62), 2**62)}[index]:
        ok = list(GOOD)
        ok[index] = edge
        assert len(read_re10k(_write_line(tmp_path, ok))) == 1


def test_write_refuses_what_read_would():
    w2c, K = _cameras(2)
    far = w2c.clone()
    far[1, 0, 3] = 2e6
    with pytest.raises(ValueError, match=r"camera 1: field w2c\[0,3\] = 2000000"):
        write_re10k("unused.txt", far, K, 96, 128)
    with pytest.raises(ValueError, match=r"camera 0: field fx = 9.99\d*e-05: expected a focal length"):
        write_re10k("unused.txt", w2c, make_intrinsics(0.0128, 112.0, 63.5, 47.5).expand(2, 3, 3), 96, 128)
