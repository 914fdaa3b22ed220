"""Issue 19 diagnostic: the near split's dense stereo tracks splatted at the model's 64 px, at 128 px from upsampled
64 px frames, and at 128 px from the video's own frames, against the stereo_splat reference. Run from the repo root:
`python scripts/real_splat_resolution.py`."""
import numpy as np, torch, torch.nn.functional as F
from mvtrack.runners.bench import load_split
from mvtrack.data.source_geometry import estimate_geometry, dense_tracks
from mvtrack.geometry.splat import carry_frames
from mvtrack.runners.references import stereo_splat, inpaint_holes

split = load_split("configs/bench/re10k/near.yaml")
def psnr(a, b):
    return float(10 * np.log10(1 / ((a - b) ** 2).mean()))
def splat(source, target, geo, frames, size):
    tracks = dense_tracks(source, geo)
    s = size[1] / source.size[1]
    Ks, Kt = source.K.clone(), target.K.clone()
    for K in (Ks, Kt):
        K[..., :2, :] *= s
        K[..., :2, 2] += (s - 1) / 2  # pixel-centre convention x' = (x + 0.5) s - 0.5
    tracks.cell = tracks.cell * s
    paired = tracks.paired(torch.stack([source.w2c, target.w2c])[None], torch.stack([Ks, Kt])[None], size)
    total, mass, cov = carry_frames(frames[None], paired.tracks[:, 0], paired.visible[:, 0], paired.tracks[:, 1],
                                    paired.visible[:, 1], paired.source_frame[:, 1], paired.weight[:, 1])
    img = (total / mass.clamp_min(1e-6))[0].clamp(0, 1).numpy()
    filled = torch.from_numpy(inpaint_holes(img, mass[0, :, 0].numpy() < 1e-4))
    return F.interpolate(filled, size=source.size, mode="area").numpy()
for clip in split.clip_ids():
    source, target = split.load(clip)
    geo = estimate_geometry(source)
    truth = target.frames.numpy()
    ref = stereo_splat(source, target, geo).numpy()
    H, W = source.size
    out = [psnr(ref, truth)]
    for s in (1, 2):
        size = (H * s, W * s)
        up = F.interpolate(source.frames, size=size, mode="bilinear", align_corners=False)
        out.append(psnr(splat(source, target, geo, up, size), truth))
        if s > 1:
            out.append(psnr(splat(source, target, geo, source.at(size)[0], size), truth))
    print(clip, "ref %.2f | 1x %.2f | 2x splat of upsampled 64 px frames %.2f | 2x splat of 128 px frames %.2f"
          % tuple(out), flush=True)
