"""MultiCamVideo reader on tiny scenes written in the dataset's exact layout."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from mvtrack.data import MultiCamVideo, collate, write_multicam_scene
from mvtrack.data.readers.multicam import camera_w2c, read_camera_file
from mvtrack.geometry import invert_rigid, project
from mvtrack.geometry.unreal import intrinsics_from_sensor

V, T, SRC = 3, 6, 64  # cameras, frames, square source size (the dataset: 10, 81, 1280)


@pytest.fixture
def dataset_root(tmp_path, orbit, blob_video):
    """Two scenes under f24_aperture5/ whose frames show TARGET where the cameras project it."""
    w2c = orbit(V, T)
    K = intrinsics_from_sensor(24.0, SRC, SRC).expand(V, T, 3, 3)
    frames, _ = blob_video(w2c, K, SRC, SRC)
    for scene in ("scene1", "scene2"):
        write_multicam_scene(tmp_path / "train" / "f24_aperture5" / scene, frames, w2c, cameras=[1, 2, 4])
    return tmp_path, w2c


def test_known_opencv_cameras_come_back_exactly(dataset_root):
    root, w2c = dataset_root
    path = root / "train" / "f24_aperture5" / "scene1" / "cameras" / "camera_extrinsics.json"
    data = read_camera_file(path)
    for v, cam in enumerate([1, 2, 4]):
        torch.testing.assert_close(camera_w2c(data, cam, list(range(T)), path), w2c[v], atol=1e-12, rtol=0)
    ds = MultiCamVideo(root, size=(32, 48), num_frames=T, cameras=[4, 1], relative=False, shuffle=False)
    clip = ds[0]
    torch.testing.assert_close(clip.w2c, w2c[[2, 0]].float(), atol=1e-6, rtol=0)


def test_a_hand_written_unreal_camera_reads_as_opencv(tmp_path):
    # ReCamMaster's example frame0 (cam01): unrotated Unreal camera at (3390, 1380, 240) cm
    scene = tmp_path / "f35_aperture2.4" / "scene7"
    (scene / "cameras").mkdir(parents=True)
    text = "[1 0 0 0] [-0 1 0 0] [0 -0 1 0] [3390 1380 240 1] "
    (scene / "cameras" / "camera_extrinsics.json").write_text(json.dumps({"frame0": {"cam01": text}}))
    w2c = camera_w2c(read_camera_file(scene / "cameras" / "camera_extrinsics.json"), 1, [0], scene)
    c2w = torch.tensor([[0.0, 0, 1, 33.9], [-1, 0, 0, -13.8], [0, -1, 0, 2.4], [0, 0, 0, 1]], dtype=torch.float64)
    assert torch.equal(w2c[0], invert_rigid(c2w))


@pytest.mark.parametrize("crop", ["center", "stretch"])
def test_the_projected_point_lands_on_the_blob_after_crop_and_resize(dataset_root, centroids, target, crop):
    root, _ = dataset_root
    kwargs = dict(size=(32, 48), num_frames=4, start="random", views=2, crop=crop, seed=3)
    relative, absolute = MultiCamVideo(root, **kwargs), MultiCamVideo(root, relative=False, **kwargs)
    for i in range(len(absolute)):
        clip, rel = absolute[i], relative[i]
        assert clip.video.shape == (2, 4, 3, 32, 48) and clip.tracks.shape == (2, 4, 0, 2)
        assert rel.meta["cameras"] == clip.meta["cameras"] and rel.meta["frames"] == clip.meta["frames"]
        xy, _ = project(target.expand(2, 4, 1, 3), clip.w2c.double(), clip.K.double())
        torch.testing.assert_close(centroids(clip.video), xy[..., 0, :], atol=0.1, rtol=0)  # measured 0.04
        # relative poses: view 0's first camera is the identity, the rest follow it (ReCamMaster)
        torch.testing.assert_close(rel.w2c.double(), clip.w2c.double() @ invert_rigid(clip.w2c[0, 0].double()),
                                   atol=1e-5, rtol=0)
    if crop == "center":  # 64x64 cut to 43x64, then 32x48: fx and fy follow their own scale factors
        f = 24 / 23.76 * 64
        assert clip.K[0, 0, 0, 0].item() == pytest.approx(f * 48 / 64)
        assert clip.K[0, 0, 1, 1].item() == pytest.approx(f * 32 / 43)


def test_loader_workers_read_disjoint_shares_with_the_same_samples(dataset_root):
    root, _ = dataset_root
    ds = MultiCamVideo(root, size=16, num_frames=2, stride=2, start="random", samples_per_scene=2, seed=5)
    alone = {c.meta["index"]: (c.meta["cameras"], c.meta["frames"]) for c in ds}
    assert sorted(alone) == [0, 1, 2, 3]
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    seen = [(m["index"], (m["cameras"], m["frames"])) for batch in loader for m in batch.meta]
    assert sorted(i for i, _ in seen) == [0, 1, 2, 3] and all(alone[i] == s for i, s in seen)


def test_malformed_inputs_are_one_line_errors_naming_the_file(dataset_root):
    root, w2c = dataset_root
    scene = root / "train" / "f24_aperture5" / "scene1"
    path = scene / "cameras" / "camera_extrinsics.json"
    good = json.loads(path.read_text())
    ds = MultiCamVideo(root / "train" / "f24_aperture5" / "scene1", size=16, num_frames=T, cameras=[1, 2])

    def error_with(data):
        path.write_text(data if isinstance(data, str) else json.dumps(data))
        with pytest.raises(ValueError) as e:
            ds[0]
        assert str(path) in str(e.value) and "\n" not in str(e.value)
        return str(e.value)

    assert "not valid JSON" in error_with("{frame0:")
    assert "frame3 has no cam02" in error_with({**good, "frame3": {"cam01": good["frame3"]["cam01"]}})
    def with_matrix(frame, cam, text):
        return {**good, frame: {**good[frame], cam: text}}

    assert "4 bracketed rows of 4 numbers" in error_with(with_matrix("frame1", "cam01", "[1 0 0] [0 1 0]"))
    assert "not a number" in error_with(with_matrix("frame1", "cam02", "[a 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]"))
    gap = {**{k: v for k, v in good.items() if k != "frame2"}, "frame9": good["frame2"]}
    assert "expected keys frame0 ... frame5" in error_with(gap)
    scaled = with_matrix("frame0", "cam01", "[2 0 0 0] [0 1 0 0] [0 0 1 0] [0 0 0 1]")
    assert "rotation rows: expected a rotation" in error_with(scaled)
    # 10 frames of cameras, 6 of video
    write_multicam_scene(scene, None, w2c[:, :2].repeat(1, 5, 1, 1), cameras=[1, 2, 4])
    ds10 = MultiCamVideo(scene, size=16, num_frames=10, cameras=[1, 2])
    with pytest.raises(ValueError, match=r"cam01.mp4: has 6 frames, expected at least 10"):
        ds10[0]
    with pytest.raises(FileNotFoundError, match="no videos/cam03.mp4"):
        MultiCamVideo(scene, size=16, num_frames=2, cameras=[1, 3])[0]


def test_bad_options_and_missing_focal_length(tmp_path, dataset_root):
    root, w2c = dataset_root
    write_multicam_scene(tmp_path / "val" / "10basic_trajectories", None, w2c)
    with pytest.raises(ValueError, match="10basic_trajectories: no folder f{mm}_aperture{...} names its focal length; "
                                         "pass focal_mm"):
        MultiCamVideo(tmp_path / "val")
    assert MultiCamVideo(tmp_path / "val", focal_mm=18.0).items[0][1] == 18.0
    for kwargs, message in [({"size": 0}, "size: expected"), ({"stride": 0}, "stride: expected"),
                            ({"start": "middle"}, "start: expected"), ({"views": 0}, "views: expected"),
                            ({"cameras": [1, 1]}, "cameras: expected distinct"), ({"crop": "pad"}, "crop: expected")]:
        with pytest.raises(ValueError, match=message):
            MultiCamVideo(root, **kwargs)
    with pytest.raises(ValueError, match="has 6 frames, expected at least 7"):
        MultiCamVideo(root / "train", num_frames=7)[0]
