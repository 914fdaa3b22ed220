"""Multi-view Kubric (MV-TAP's layout) reader on engine clips written in that exact layout."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mvtrack.data import MultiViewKubric, collate, write_kubric_sequence
from mvtrack.geometry import project
from mvtrack.geometry.crop import crop_intrinsics, crop_points, inside_image
from mvtrack.scenes import SynthConfig, clip_seed, render_clips
from mvtrack.viz import to_uint8_frames


@pytest.fixture(scope="module")
def engine_clips():
    cfg = SynthConfig(views=3, frames=6, height=24, width=32, num_tracks=64)
    return render_clips(cfg, [clip_seed(7, i) for i in range(2)]).unbatch()


def _frames(clip):
    return np.stack([to_uint8_frames(clip.video[v]) for v in range(clip.num_views)])


@pytest.fixture
def kubric_root(tmp_path, engine_clips):
    """Two parts of one sequence each (MV-TAP's training layout: <root>/<part>/frames/<seq>/<view>/rgba_*.png)."""
    for n, clip in enumerate(engine_clips):
        write_kubric_sequence(tmp_path / f"part{n}", f"seq{n}", _frames(clip), clip.w2c, clip.K, clip.tracks,
                              clip.visible, is_bkgd=clip.track_instance < 2)
    return tmp_path


def test_tracks_and_cameras_follow_the_crop_and_agree_with_each_other(kubric_root, engine_clips):
    ds = MultiViewKubric(kubric_root, size=16, num_frames=6, num_tracks=None, shuffle=False)
    box = (0, 4, 24, 24)  # the centred 24x24 window of a 24x32 frame, then 16x16
    for n, src in enumerate(engine_clips):
        clip = ds[n]
        assert clip.video.shape == (3, 6, 3, 16, 16) and clip.meta["sequence"] == f"seq{n}"
        torch.testing.assert_close(clip.w2c, src.w2c, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(clip.K, crop_intrinsics(src.K, box, (16, 16)), atol=1e-5, rtol=0)
        expected = crop_points(src.tracks.double(), box, (16, 16))
        seen = (src.visible & inside_image(expected, (16, 16))).any(dim=(0, 1))  # tracks visible after the crop
        ids = seen.nonzero()[:, 0]
        torch.testing.assert_close(clip.tracks, expected[:, :, ids].float(), atol=1e-4, rtol=0)
        assert torch.equal(clip.visible, (src.visible & inside_image(expected, (16, 16)))[:, :, ids])
        # the engine's 3D tracks, projected with the cameras read back, land on the tracks read back
        xy, _ = project(src.tracks3d[None, :, ids].double(), clip.w2c.double(), clip.K.double())
        torch.testing.assert_close(xy[clip.visible].float(), clip.tracks[clip.visible], atol=2e-3, rtol=0)
        # queries: (v, t, x, y) of each track's first visible frame
        v, t = clip.queries[:, 0].long(), clip.queries[:, 1].long()
        assert clip.visible[v, t, torch.arange(len(ids))].all()
        assert torch.equal(clip.queries[:, 2:], clip.tracks[v, t, torch.arange(len(ids))])


def test_view_and_track_sampling(kubric_root, engine_clips):
    ds = MultiViewKubric(kubric_root, size=(24, 32), num_frames=3, stride=2, start="random", views=2, num_tracks=40,
                         points="dynamic", seed=1)
    clip = ds[0]
    assert clip.tracks.shape == (2, 3, 40, 2) and clip.queries.shape == (40, 4)
    assert clip.meta["frames"] in ([0, 2, 4], [1, 3, 5]) and len(set(clip.meta["views"])) == 2
    src = engine_clips[int(clip.meta["part"][-1])]
    # every kept track is one of the engine's object tracks, seen at its exact positions
    views = [int(name[-1]) for name in clip.meta["views"]]
    frames = clip.meta["frames"]
    truth = src.tracks[views][:, frames]  # (2, 3, N_all, 2)
    dynamic = (src.track_instance >= 2).nonzero()[:, 0]
    for n in range(40):
        match = (truth[:, :, dynamic] - clip.tracks[:, :, n : n + 1]).abs().amax(dim=(0, 1, 3)) < 1e-4
        assert match.any()
    many = MultiViewKubric(kubric_root, size=(24, 32), num_frames=6, num_tracks=500, shuffle=False)[0]
    assert many.tracks.shape[2] == 500 and many.meta["repeated_tracks"] > 0
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate)
    assert sorted(m["sequence"] for b in loader for m in b.meta) == ["seq0", "seq1"]


def test_malformed_inputs_are_one_line_errors_naming_the_file(kubric_root):
    tracks = kubric_root / "part0" / "stacked_tracks" / "seq0" / "tracks.npz"
    arrays = dict(np.load(tracks))
    ds = MultiViewKubric(kubric_root, size=16, num_frames=6, shuffle=False)

    def error_with(**changes):
        np.savez(tracks, **{k: v for k, v in {**arrays, **changes}.items() if v is not None})
        with pytest.raises(ValueError) as e:
            ds[0]
        assert str(tracks) in str(e.value) and "\n" not in str(e.value)
        return str(e.value)

    assert "no array 'cam_rot'" in error_with(cam_rot=None)
    assert "coords: expected float (V, N, T, 2)" in error_with(coords=arrays["coords"][..., :1])
    assert "occluded: expected (3, 64, 6)" in error_with(occluded=arrays["occluded"][:, :5])
    assert "cam_trans: expected numbers of shape (3, 6, 3) or (3, 3)" in error_with(
        cam_trans=arrays["cam_trans"][:, :2])
    assert "intrinsics: expected positive focal lengths" in error_with(intrinsics=-arrays["intrinsics"])
    assert "cam_rot, cam_trans rotation block: expected a rotation" in error_with(cam_rot=2 * arrays["cam_rot"])
    np.savez(tracks, **arrays)
    (kubric_root / "part0" / "frames" / "seq0" / "view_1" / "rgba_00003.png").unlink()
    with pytest.raises(ValueError, match=r"seq0/view_1: 5 rgba_\*.png frames, but .*tracks.npz has 6"):
        ds[0]
    tracks.unlink()
    np.save(tracks.with_suffix(".npy"), {"coords": arrays["coords"]}, allow_pickle=True)  # MV-TAP's own format
    with pytest.raises(ValueError, match=r"tracks.npy: MV-TAP's tracks.npy is a pickled dict and mvtrack never"):
        ds[0]
    with pytest.raises(ValueError, match="points: expected one of"):
        MultiViewKubric(kubric_root, points="static")
    with pytest.raises(FileNotFoundError, match="not a directory"):
        MultiViewKubric(kubric_root / "missing")
