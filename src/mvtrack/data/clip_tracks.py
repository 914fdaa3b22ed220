"""Training tracks for multi-camera clips that come without them (MultiCamVideo, user footage): what MVTrack4Gen,
Track4Gen and Track2View supervise with, written into the shards once (``mvtrack prepare-tracks``).

Every track starts at a query point of view 0, frame 0 (a grid by default), and is followed into every view and frame:

- ``flow`` (2D): Track2View's curation. For each other view v, view 0 reversed then view v (``reverse_and_concatenate``,
  no shared frame: two cameras) is tracked by the project's flow tracker (``flow_tracks``: chained DIS flow with a
  forward-backward check) from the junction and split back (``split_concatenated_tracks``): one pass pairs view 0 with
  view v. Needs no cameras and follows moving things too; the jump between two cameras at one instant is where it
  fails. Where the cameras are known and apart, a target point off the epipolar line of its view-0 point at the same
  instant by more than ``epipolar_px`` is lost from then on (``epipolar_check``): the views are synchronised, so this
  holds for moving points too.
- ``stereo`` (3D): with known, moving cameras, view 0's own frames give static depth (``estimate_geometry``, plane-sweep
  stereo); a query pixel with a confident, confirmed depth (``SourceGeometry.valid``) is lifted to its world point and
  projected into every camera, visible where a z-buffer over view 0's dense static points (``dense_tracks``) does not
  hide it. Exact for the static scene; a moving point lifted as if static is wrong everywhere but its query.
- ``auto`` (default): ``flow``'s 2D tracks, and ``stereo``'s 3D points kept where they agree with them: a lifted point
  whose projections are within ``consistent_px`` of its flow track wherever that is followed (view 0's later frames,
  the other views), at least ``MIN_AGREEING`` times, is a static point with a right depth; it gets ``tracks3d`` and
  its projections fill the frames the flow lost (by the z-buffer's visibility). The others keep their flow tracks
  and no 3D (NaN).

``clip_track_accuracy`` scores them against the engine's exact tracks (``benchmarks/prepared_tracks.py``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mvtrack.geometry import camera_centers, fundamental_matrix, project, unproject, zbuffer_visible
from mvtrack.geometry.epipolar import epipolar_distance

from .clip import MultiViewClip, collate
from .real_tracks import reverse_and_concatenate, split_concatenated_tracks
from .source_geometry import clip_source, dense_tracks, estimate_geometry

METHODS = ("flow", "stereo", "auto")
EPIPOLAR_PX = 2.0  # a cross-view point farther from its epipolar line is lost (flow's jump between two cameras)
CONSISTENT_PX = 2.0  # a lifted point must project this close to its flow track to keep its 3D (auto)
MIN_AGREEING = 2  # ... at this many (view, frame) pairs besides its query, and nowhere farther


def query_grid(size: tuple[int, int], num: int) -> torch.Tensor:
    """(n, 2) pixel (x, y) of about ``num`` points on a regular grid over an image of ``size = (H, W)`` (n <= num)."""
    H, W = size
    step = max(1.0, math.sqrt(H * W / max(1, num)))
    xs = torch.arange(step / 2 - 0.5, W - 0.5, step)
    ys = torch.arange(step / 2 - 0.5, H - 0.5, step)
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1).reshape(-1, 2)
    return grid[:num]


def _uint8(video: torch.Tensor) -> np.ndarray:
    """(T, 3, H, W) in [0, 1] -> (T, H, W, 3) uint8."""
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def epipolar_check(tracks: torch.Tensor, visible: torch.Tensor, w2c: torch.Tensor, K: torch.Tensor,
                   max_px: float = EPIPOLAR_PX) -> torch.Tensor:
    """``visible`` with every target point (views 1..) lost from the first frame where it lies farther than ``max_px``
    from the epipolar line of its view-0 point at the same instant (both visible). Frames where a view's centre
    coincides with view 0's have no epipolar geometry and check nothing.

    Args:
        tracks: (V, T, N, 2) pixels; visible: (V, T, N) bool; w2c (V, T, 4, 4); K (V, T, 3, 3).
    """
    w2c, K = w2c.double().cpu(), K.double().cpu()
    out = visible.clone()
    centres = camera_centers(w2c)  # (V, T, 3)
    for v in range(1, tracks.shape[0]):
        apart = (centres[v] - centres[0]).norm(dim=-1) > 1e-6 * (1 + centres[0].norm(dim=-1))  # (T,)
        d = epipolar_distance(fundamental_matrix(w2c[0], K[0], w2c[v], K[v]), tracks[0].double(), tracks[v].double())
        off = visible[0] & visible[v] & apart[:, None] & ~(d <= max_px)  # (T, N)
        out[v] &= ~off.cummax(0).values
    return out


def flow_clip_tracks(clip: MultiViewClip, queries: torch.Tensor,
                     epipolar_px: float | None = EPIPOLAR_PX) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-view tracks by reverse-and-concatenate (see the module docstring).

    Args:
        clip: unbatched, V views of T frames; queries: (N, 2) pixels of view 0, frame 0.
        epipolar_px: the ``epipolar_check`` threshold; None: no check.

    Returns:
        tracks (V, T, N, 2) pixels and visible (V, T, N) bool.
    """
    from mvtrack.geometry.optical_flow import flow_tracks

    V, T, N = clip.num_views, clip.num_frames, queries.shape[0]
    tracks, visible = torch.zeros(V, T, N, 2), torch.zeros(V, T, N, dtype=torch.bool)
    if V == 1:
        q = np.concatenate([np.zeros((N, 1)), queries.double().numpy()], 1)
        tr, vis = flow_tracks(_uint8(clip.video[0]), q)
        return torch.from_numpy(tr).float()[None], torch.from_numpy(vis)[None]
    q = np.concatenate([np.full((N, 1), T - 1), queries.double().numpy()], 1)  # the junction: view 0, frame 0
    for v in range(1, V):
        joined = reverse_and_concatenate(clip.video[0], clip.video[v], share_first=False)  # (2T, 3, H, W)
        tr, vis = flow_tracks(_uint8(joined), q)
        src, src_vis, tgt, tgt_vis = split_concatenated_tracks(torch.from_numpy(tr), torch.from_numpy(vis), T)
        tracks[v], visible[v] = tgt.float(), tgt_vis
        if v == 1:  # view 0's own tracks are the same in every pass
            tracks[0], visible[0] = src.float(), src_vis
    if epipolar_px is not None:
        visible = epipolar_check(tracks, visible, clip.w2c, clip.K, epipolar_px)
    return tracks, visible


def clip_geometry(clip: MultiViewClip):
    """View 0's ``SourceGeometry`` by stereo over its own frames and cameras (``estimate_geometry``); mode "none"
    when its camera does not move."""
    return estimate_geometry(clip_source(collate([clip.to("cpu")]), 0, 0))


def stereo_clip_tracks(clip: MultiViewClip, queries: torch.Tensor, geometry=None):
    """Static 3D tracks from view 0's stereo depth (see the module docstring).

    Args:
        clip: unbatched with known cameras; queries: (N, 2) pixels of view 0, frame 0.
        geometry: view 0's ``SourceGeometry`` (``clip_geometry``) if already estimated.

    Returns:
        tracks (V, T, N, 2), visible (V, T, N), points (N, 3) world (NaN where not lifted) and lifted (N,) bool.
    """
    V, T, N = clip.num_views, clip.num_frames, queries.shape[0]
    geometry = geometry if geometry is not None else clip_geometry(clip)
    h, w = geometry.depth.shape[-2:]
    at = ((queries + 0.5) * torch.tensor([w / clip.size[1], h / clip.size[0]]) - 0.5).round().long()  # nearest
    at[:, 0].clamp_(0, w - 1)
    at[:, 1].clamp_(0, h - 1)
    z = geometry.depth[0, at[:, 1], at[:, 0]]
    lifted = geometry.valid[0, at[:, 1], at[:, 0]] & torch.isfinite(z) & (z > 0)
    w2c, K = clip.w2c.double().cpu(), clip.K.double().cpu()
    points = unproject(queries.double(), z.double(), w2c[0, 0], K[0, 0])  # (N, 3)
    points = torch.where(lifted[:, None], points, torch.full_like(points, math.nan))
    if not lifted.any():
        return torch.zeros(V, T, N, 2), torch.zeros(V, T, N, dtype=torch.bool), points.float(), lifted
    source = clip_source(collate([clip.to("cpu")]), 0, 0)
    dense = dense_tracks(source, geometry, grid_step=1, everywhere=False)
    occluders = dense.points[0, 0].double()  # (M, 3): static, the same at every frame
    everything = torch.cat([torch.nan_to_num(points, nan=0.0), occluders])  # (N + M, 3)
    xy, depth = project(everything.expand(V, T, *everything.shape), w2c, K)
    valid = torch.cat([lifted, torch.ones(len(occluders), dtype=torch.bool)]).expand(V, T, -1)
    seen = zbuffer_visible(xy.reshape(V * T, -1, 2), depth.reshape(V * T, -1), valid.reshape(V * T, -1), clip.size,
                           dense.cell).reshape(V, T, -1)
    tracks = torch.where(lifted[:, None], xy[..., :N, :], torch.zeros_like(xy[..., :N, :])).float()
    return tracks, seen[..., :N] & lifted, points.float(), lifted


def clip_tracks(clip: MultiViewClip, method: str = "auto", num_tracks: int = 1024,
                queries: torch.Tensor | None = None, epipolar_px: float | None = EPIPOLAR_PX,
                consistent_px: float = CONSISTENT_PX) -> MultiViewClip:
    """The clip with ``tracks`` / ``visible`` (and ``tracks3d`` for lifted static points, ``queries``) from ``method``.

    Args:
        clip: unbatched MultiViewClip; its own tracks, if any, are replaced. ``stereo`` needs known cameras and a
            moving view 0 (else ``ValueError``); ``auto`` is ``flow`` without them.
        queries: (N, 2) pixels of view 0 frame 0; default ``query_grid(size, num_tracks)``.
        epipolar_px, consistent_px: see the module docstring.

    Returns:
        A MultiViewClip (same video, cameras and depth; ``tracks3d`` (T, N, 3), the same static point at every frame
        and NaN where none, unless ``flow``; ``meta["tracks"]``: method, ``num`` tracks and ``lifted`` 3D points).
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if clip.batched:
        raise ValueError("clip_tracks: expected an unbatched clip")
    queries = query_grid(clip.size, num_tracks) if queries is None else queries.float().cpu()
    N, T = queries.shape[0], clip.num_frames
    tracks3d = None
    if method == "stereo":
        geometry = clip_geometry(clip)
        if geometry.mode == "none":
            raise ValueError(f"clip_tracks: stereo needs view 0's camera to move ({geometry.note}); use method flow "
                             "or auto")
        tracks, visible, points, lifted = stereo_clip_tracks(clip, queries, geometry)
    else:
        tracks, visible = flow_clip_tracks(clip, queries, epipolar_px)
        lifted = torch.zeros(N, dtype=torch.bool)
        points = torch.full((N, 3), math.nan)
        if method == "auto" and clip.num_frames > 1:
            geometry = clip_geometry(clip)
            if geometry.mode != "none":
                s_tracks, s_visible, s_points, s_lifted = stereo_clip_tracks(clip, queries, geometry)
                followed = visible.clone()
                followed[0, 0] = False  # the query itself agrees with any depth
                gap = (s_tracks - tracks).norm(dim=-1)  # (V, T, N)
                agree = (followed & (gap <= consistent_px)).sum((0, 1))
                disagree = (followed & ~(gap <= consistent_px)).any(1).any(0)
                lifted = s_lifted & (agree >= MIN_AGREEING) & ~disagree
                points = torch.where(lifted[:, None], s_points, points)
                fill = lifted[None, None] & ~visible & s_visible  # frames the flow lost, where the z-buffer sees it
                tracks = torch.where(fill[..., None], s_tracks, tracks)
                visible = visible | fill
    if method != "flow":
        tracks3d = points[None].expand(T, N, 3).clone()
    meta = dict(clip.meta) if isinstance(clip.meta, dict) else {}
    meta["tracks"] = {"method": method, "num": N, "lifted": int(lifted.sum())}
    q = torch.cat([torch.zeros(N, 2), queries], 1)  # (v, t, x, y)
    return MultiViewClip(video=clip.video, w2c=clip.w2c, K=clip.K, tracks=tracks.to(clip.video.device),
                         visible=visible.to(clip.video.device), depth=clip.depth,
                         tracks3d=None if tracks3d is None else tracks3d.to(clip.video.device), queries=q, meta=meta)


def clip_track_accuracy(prepared, truth, static=None, truth_points=None) -> dict:
    """How close prepared tracks are to exact ones that start at the same view-0 frame-0 points (engine clips), pooled
    over one clip or a list of them.

    Args:
        prepared, truth: unbatched clips (or lists of them) with the same N tracks each, the prepared ones queried at
            the truth's frame-0 positions in view 0. static: (N,) bool per clip, the tracks on static points, for
            separate rows. truth_points: (N, 3) per clip, the exact world points at frame 0, to score ``tracks3d``.

    Returns:
        ``{"cross_view": {"all", "static", "moving"}, "source_view": {"all"}}`` rows scored over the (view, frame)
        pairs of views 1.. (cross_view) or of view 0 at frames 1.. (source_view): ``count`` (truly visible pairs),
        ``coverage`` (share of them kept, i.e. predicted visible), ``false_visible`` (share of the kept pairs that are
        truly hidden), ``median_px`` and ``within_{d}`` (d in 1, 2, 4, 8: share within d px) over the kept, truly
        visible pairs. With ``truth_points`` and 3D tracks, ``"depth"``: ``lifted`` (share of tracks with 3D),
        ``count``, ``median_rel`` (median |z - z_true| / z_true in view 0's first camera) and ``within_5pct``.
    """
    many = isinstance(prepared, (list, tuple))
    prepared, truth = (list(prepared), list(truth)) if many else ([prepared], [truth])
    static = (list(static) if many else [static]) if static is not None else None
    truth_points = (list(truth_points) if many else [truth_points]) if truth_points is not None else None
    scopes = {"cross_view": ["all"] + (["static", "moving"] if static is not None else []), "source_view": ["all"]}
    pooled = {(w, s): {"gt": [], "kept": [], "err": []} for w, ss in scopes.items() for s in ss}
    rel, lifted_count, total = [], 0, 0
    for i, (p, t) in enumerate(zip(prepared, truth)):
        V, T, N = t.visible.shape
        err = (p.tracks.float().cpu() - t.tracks.float().cpu()).norm(dim=-1)  # (V, T, N)
        where = {"cross_view": torch.zeros(V, T, dtype=torch.bool), "source_view": torch.zeros(V, T, dtype=torch.bool)}
        where["cross_view"][1:] = True
        where["source_view"][0, 1:] = True
        points = {"all": torch.ones(N, dtype=torch.bool)}
        if static is not None:
            points.update(static=static[i].cpu(), moving=~static[i].cpu())
        for (w, s), acc in pooled.items():
            scope = points[s][None, None] & where[w][..., None]
            gt, kept = t.visible.cpu() & scope, p.visible.cpu() & scope
            acc["gt"].append(int(gt.sum()))
            acc["kept"].append((int(kept.sum()), int((kept & ~gt).sum())))
            acc["err"].append(err[gt & kept])
        if truth_points is not None and p.tracks3d is not None:
            lifted = torch.isfinite(p.tracks3d[0].cpu()).all(-1)
            w2c, K = t.w2c[0, 0].double().cpu(), t.K[0, 0].double().cpu()
            _, z_true = project(truth_points[i][lifted].double().cpu(), w2c, K)
            _, z = project(p.tracks3d[0, lifted].double().cpu(), w2c, K)
            rel.append((z - z_true).abs() / z_true)
            lifted_count, total = lifted_count + int(lifted.sum()), total + N
    rows: dict = {w: {} for w in scopes}
    for (w, s), acc in pooled.items():
        e, gt = torch.cat(acc["err"]), sum(acc["gt"])
        kept, false = sum(k for k, _ in acc["kept"]), sum(f for _, f in acc["kept"])
        row = {"count": gt, "coverage": len(e) / max(1, gt), "false_visible": false / max(1, kept),
               "median_px": float(e.median()) if len(e) else math.nan}
        for d in (1, 2, 4, 8):
            row[f"within_{d}"] = float((e <= d).float().mean()) if len(e) else math.nan
        rows[w][s] = row
    if total:
        r = torch.cat(rel)
        rows["depth"] = {"lifted": lifted_count / total, "count": lifted_count,
                         "median_rel": float(r.median()) if len(r) else math.nan,
                         "within_5pct": float((r <= 0.05).float().mean()) if len(r) else math.nan}
    return rows


def source_shards(source) -> list:
    """The shard paths at ``source`` (``list_shards``), checked to hold video clips: ``FileNotFoundError`` or
    ``ValueError`` naming ``--source`` otherwise."""
    from .latents import LatentClip
    from .shards import ReadStats, iter_shard, list_shards

    try:
        paths = list_shards(source)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"--source: {str(e).removeprefix('shards: ')}") from None
    first = next((clip for path in paths for clip in iter_shard(path, ReadStats())), None)
    if first is None:
        raise ValueError(f"--source {source}: the shards hold no readable clips")
    if isinstance(first, LatentClip):
        raise ValueError(f"--source {source}: holds cached latents (mvtrack encode), which have no frames to track; "
                         "prepare tracks on the video shards, then encode those")
    return paths


def prepare_track_shards(source, out_dir, method: str = "auto", num_tracks: int = 1024, clips_per_shard: int = 64,
                         video_format: str = "png", progress=None) -> dict:
    """Write every clip of the shards at ``source`` with tracks from ``method`` (``clip_tracks``) into shards under
    ``out_dir``; returns counts (clips, shards, tracks, lifted, the share of view 0's tracks kept in the other views,
    skipped corrupt samples)."""
    from .latents import LatentClip
    from .shards import ReadStats, ShardWriter, iter_shard

    if method not in METHODS:
        raise ValueError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    paths = source_shards(source)
    stats, read = {"clips": 0, "tracks": 0, "lifted": 0, "target_visible": 0.0}, ReadStats()
    with ShardWriter(out_dir, clips_per_shard, video_format=video_format) as writer:
        for path in paths:
            for clip in iter_shard(path, read):
                if isinstance(clip, LatentClip):
                    raise ValueError(f"--source {path}: holds cached latents (mvtrack encode), which have no frames "
                                     "to track; prepare tracks on the video shards, then encode those")
                prepared = clip_tracks(clip, method, num_tracks)
                writer.write(prepared)
                stats["clips"] += 1
                stats["tracks"] += prepared.num_tracks
                stats["lifted"] += prepared.meta["tracks"]["lifted"]
                if prepared.num_views > 1:
                    stats["target_visible"] += float(prepared.visible[1:].float().mean())
                if progress is not None:
                    progress(stats["clips"])
    if stats["clips"] == 0:
        raise ValueError(f"--source {source}: the shards hold no readable clips")
    stats["shards"], stats["skipped"] = len(writer.written), read.skipped_samples
    stats["target_visible"] /= stats["clips"]
    return stats
