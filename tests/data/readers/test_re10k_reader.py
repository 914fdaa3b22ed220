"""RealEstate10K (CameraCtrl's layout) reader on tiny clips written in that exact layout."""

import json

import pytest
import torch
from torch.utils.data import DataLoader

from mvtrack.data import RealEstate10K, collate, homography_pseudo_views, write_re10k_layout
from mvtrack.geometry import make_intrinsics, project

T, H0, W0 = 9, 40, 72  # frames and source size of a clip (CameraCtrl's clips: tens to hundreds, 360x640)


@pytest.fixture
def layout(tmp_path, orbit, blob_video):
    """Two clips with off-centre principal points whose frames show TARGET where the cameras project it."""
    clips, truth = [], {}
    for n, name in enumerate(["0000cc6d8b108390", "00028da87cc5a4c4"]):
        w2c = orbit(1, T)[0].flip(0) if n else orbit(1, T)[0]  # (T, 4, 4); the second clip plays it backwards
        K = make_intrinsics(60.0 + 4 * n, 58.0, 37.5 - 3 * n, 18.0).double().expand(T, 3, 3)
        frames, _ = blob_video(w2c, K, H0, W0)
        clips.append({"name": name, "frames": frames, "w2c": w2c, "K": K, "video_id": f"vid{n}",
                      "caption": f"a room {n}"})
        truth[name] = (w2c, K)
    write_re10k_layout(tmp_path, clips, split="train")
    return tmp_path, truth


@pytest.mark.parametrize("crop", ["center", "stretch"])
def test_monocular_clips_with_cameras_that_follow_the_crop(layout, centroids, target, crop):
    root, truth = layout
    ds = RealEstate10K(root, size=(32, 32), num_frames=4, stride=2, start="random", crop=crop, relative=False)
    for i in range(len(ds)):
        clip = ds[i]
        assert clip.video.shape == (1, 4, 3, 32, 32) and clip.tracks.shape == (1, 4, 0, 2) and clip.num_views == 1
        w2c, _ = truth[clip.meta["clip_name"]]
        frames = clip.meta["frames"]
        assert frames == list(range(frames[0], frames[0] + 7, 2)) and clip.meta["caption"].startswith("a room")
        torch.testing.assert_close(clip.w2c[0].double(), w2c[frames], atol=1e-6, rtol=0)
        xy, _ = project(target.expand(1, 4, 1, 3), clip.w2c.double(), clip.K.double())
        torch.testing.assert_close(centroids(clip.video), xy[..., 0, :], atol=0.1, rtol=0)  # measured 0.03


def test_relative_poses_and_pseudo_views(layout):
    root, _ = layout
    ds = RealEstate10K(root, size=24, num_frames=3, stride=1, start="first", shuffle=False)
    clip = ds[1]
    torch.testing.assert_close(clip.w2c[0, 0], torch.eye(4), atol=1e-6, rtol=0)
    pseudo = homography_pseudo_views(collate([clip, ds[0]]), num_views=2, generator=torch.Generator().manual_seed(0))
    assert pseudo.video.shape == (2, 2, 3, 3, 24, 24)  # CVD's hybrid data from a monocular RealEstate10K clip


def test_short_clips_shorten_the_stride_like_cameractrl(layout):
    root, _ = layout
    clip = RealEstate10K(root, size=16, num_frames=4, stride=5, start="first")[0]
    assert clip.meta["stride"] == 2 and clip.meta["frames"] == [0, 2, 4, 6]  # (9 - 1) // 3 = 2
    with pytest.raises(ValueError, match=r"pose_files/0000cc6d8b108390.txt: has 9 frames, expected at least 10"):
        RealEstate10K(root, size=16, num_frames=10, shuffle=False)[0]


def test_loader_with_workers_reads_every_clip_once(layout):
    root, _ = layout
    loader = DataLoader(RealEstate10K(root, size=16, num_frames=2), batch_size=1, num_workers=2, collate_fn=collate)
    names = sorted(m["clip_name"] for batch in loader for m in batch.meta)
    assert names == ["0000cc6d8b108390", "00028da87cc5a4c4"]


def test_malformed_inputs_are_one_line_errors_naming_the_file(layout):
    root, _ = layout
    ann = root / "annotations" / "train.json"
    entries = json.loads(ann.read_text())
    ann.write_text(json.dumps({"clips": entries}))
    with pytest.raises(ValueError, match=r"annotations/train.json: expected a list of clips, got dict"):
        RealEstate10K(root)
    ann.write_text(json.dumps([entries[0], {"clip_path": entries[1]["clip_path"]}]))
    with pytest.raises(ValueError, match=r"annotations/train.json: entry 1: expected an object with string clip_path"):
        RealEstate10K(root)
    with pytest.raises(FileNotFoundError, match=r"annotations/val.json: not found"):
        RealEstate10K(root, split="val")
    ann.write_text(json.dumps(entries))
    pose = root / entries[0]["pose_file"]
    lines = pose.read_text().splitlines()
    pose.write_text("\n".join(lines[:3] + [lines[3].replace(" 0 0 ", " 0 ", 1)] + lines[4:]))
    ds = RealEstate10K(root, size=16, num_frames=2, shuffle=False)
    with pytest.raises(ValueError, match=r"0000cc6d8b108390.txt:4: expected 19 columns"):
        ds[0]
    (root / entries[1]["clip_path"]).write_bytes(b"not a video")
    with pytest.raises(ValueError, match=r"00028da87cc5a4c4.mp4: cannot be decoded"):
        ds[1]
    ds.skip_errors = True
    with pytest.warns(UserWarning, match="skipping sample"):
        assert list(ds) == []
    assert ds.stats.skipped_samples == 2
