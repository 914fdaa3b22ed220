"""HTML report of an evaluation: metric tables, what was skipped and why, and per generated view the videos side by
side, recovered tracks over ground truth, and the requested against the estimated camera trajectory."""

from __future__ import annotations

import html
import math
import os
from pathlib import Path

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mvtrack.evaluation.pose import relative_to_first
from mvtrack.viz import tile_views, track_colors, upscale_frames, write_mp4

from .evaluate import Artifacts, EvalResult

# Column order of the per-view table and of summaries; higher is better unless listed in LOWER_IS_BETTER.
METRIC_ORDER = ("psnr", "ssim", "warp_psnr", "epi_median_px", "epi_1px", "epi_4px", "xtrack_median_px",
                "xtrack_1px", "xtrack_4px", "xtrack_tracked", "mat_pix", "AJ", "delta_avg",
                "OA", "track_epe", "mRotErr", "mTransErr", "mCamMC", "RotErr", "TransErr", "CamMC", "cam_sens_ratio",
                "cam_psnr_gain", "flicker")
HIDDEN = {"epi_2px", "epi_matches", "xtrack_2px", "xtrack_points"}  # in results.json, not in the tables
SUMS = {"RotErr", "TransErr", "CamMC"}  # tables show the per-frame means; JSON keeps both
LOWER_IS_BETTER = {"track_epe", "mRotErr", "mTransErr", "mCamMC", "RotErr", "TransErr", "CamMC", "epi_median_px",
                   "xtrack_median_px"}
MAX_SIDE = 768  # report images and side-by-side clips are thumbnails: their long side is at most this
CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 8px 0 20px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f0f0f0; } td.l, th.l { text-align: left; }
.clip { border-top: 2px solid #ddd; padding-top: 10px; margin-top: 18px; }
.row { display: flex; gap: 16px; align-items: flex-start; flex-wrap: wrap; }
.row figure { margin: 0; } figcaption { font-size: 12px; color: #555; }
.row img, .row video { max-height: 420px; }
.bad { color: #b00; } .muted { color: #777; font-size: 13px; }
"""


def _fmt(x) -> str:
    if x is None:
        return "—"
    if isinstance(x, float):
        if math.isnan(x):
            return "—"
        if math.isinf(x):
            return "∞"
        return f"{x:.3f}" if abs(x) < 100 else f"{x:.1f}"
    return html.escape(str(x))


def _side_by_side(art: Artifacts, scale: int) -> np.ndarray:
    """(T, H', W', 3) source | generated | ground truth, upscaled when small, shrunk to ``MAX_SIDE`` when large."""
    panels = [p for p in (art.source, art.generated, art.reference) if p is not None]
    H, W = panels[0].shape[1:3]
    scale = max(1, min(scale, MAX_SIDE // max(H, len(panels) * W)))
    grid = tile_views([upscale_frames(p, scale) for p in panels], columns=len(panels))
    return _thumbnail(grid)


def _thumbnail(images: np.ndarray) -> np.ndarray:
    """Images (..., H, W, 3) uint8 shrunk (area) so that the long side is at most ``MAX_SIDE``; even sizes (H.264)."""
    H, W = images.shape[-3:-1]
    f = min(1.0, MAX_SIDE / max(H, W))
    if f == 1.0:
        return images
    size = (max(2, int(W * f) // 2 * 2), max(2, int(H * f) // 2 * 2))
    flat = images.reshape(-1, H, W, 3)
    out = np.stack([cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in flat])
    return out.reshape(*images.shape[:-3], size[1], size[0], 3)


def _track_overlay(art: Artifacts, scale: int) -> np.ndarray:
    """Last frame of the generated view: ground-truth positions (rings) and recovered ones (dots), joined by a line
    where the ground truth is visible."""
    frame = np.ascontiguousarray(upscale_frames(art.generated[-1], scale))
    colors = track_colors(art.tracks_gt.shape[1])
    gt, pred = (art.tracks_gt[-1] + 0.5) * scale, (art.tracks_pred[-1] + 0.5) * scale
    for n in range(len(gt)):
        c = tuple(int(x) for x in colors[n])
        g, p = tuple(int(round(x)) for x in gt[n]), tuple(int(round(x)) for x in pred[n])
        if art.visible_gt[-1, n]:
            cv2.circle(frame, g, scale + 1, c, 1, cv2.LINE_AA)
            if art.visible_pred[-1, n]:
                cv2.line(frame, g, p, c, 1, cv2.LINE_AA)
        if art.visible_pred[-1, n]:
            cv2.circle(frame, p, max(1, scale // 2), c, -1, cv2.LINE_AA)
    return _thumbnail(frame)


def _normalized_centres(c2w: np.ndarray) -> np.ndarray:
    """Camera centres relative to the first frame, divided by their max norm (the ``rel`` normalisation)."""
    t = relative_to_first(c2w)[:, :3, 3]
    return t / (np.linalg.norm(t, axis=-1).max() + 1e-9)


def _trajectory_plot(path: Path, art: Artifacts) -> None:
    fig = Figure(figsize=(5.2, 2.6), dpi=100)
    FigureCanvasAgg(fig)
    req = _normalized_centres(art.c2w_requested)
    est = _normalized_centres(art.c2w_estimated) if art.c2w_estimated is not None else None
    for k, (a, b, label) in enumerate(((0, 2, "x-z (top)"), (0, 1, "x-y (front)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(req[:, a], req[:, b], "o-", ms=3, lw=1.5, color="tab:blue", label="requested")
        if est is not None:
            ax.plot(est[:, a], est[:, b], "x--", ms=4, lw=1, color="tab:red", label="estimated (COLMAP)")
        ax.set_title(label, fontsize=9)
        ax.set_aspect("equal", adjustable="datalim")
        ax.tick_params(labelsize=7)
    fig.axes[0].legend(fontsize=7, loc="best")
    if est is None:
        fig.suptitle("no COLMAP trajectory", fontsize=9, color="#b00")
    fig.tight_layout()
    fig.savefig(path)


def _summary_table(summary: dict) -> str:
    rows = "".join(
        f"<tr><td class='l'>{html.escape(k)}{' ↓' if k in LOWER_IS_BETTER else ''}</td><td>{_fmt(v['mean'])}</td>"
        f"<td>{_fmt(v['std'])}</td><td>{v['n']}</td></tr>"
        for k, v in sorted(summary["metrics"].items(), key=lambda kv: METRIC_ORDER.index(kv[0])
                           if kv[0] in METRIC_ORDER else 99)
    )
    extra = ""
    if "camera_failures" in summary:
        f = summary["camera_failures"]
        why = "; ".join(f"{html.escape(k)}: {n}" for k, n in f.get("reasons", {}).items())
        extra += (f"<p>COLMAP reconstruction failures: <b>{f['failed']} of {f['attempted']}</b> generated views "
                  f"({100 * f['rate']:.0f}%); camera errors are means over the others.{' (' + why + ')' if why else ''}"
                  f"</p>")
    for group, f in summary.get("metric_failures", {}).items():
        why = "; ".join(f"{html.escape(k)}: {n}" for k, n in f["reasons"].items())
        extra += (f"<p>Metric <b>{html.escape(group)}</b> raised on {f['failed']} scored views (left NaN there, the "
                  f"views scored on the rest): {why}</p>")
    if "pose_auc" in summary:
        a = summary["pose_auc"]
        extra += (f"<p>Two-view pose AUC (source vs generated, same time, {a['pairs']} pairs, "
                  f"{html.escape(summary.get('matcher', ''))}): @5° {_fmt(a['@5'])}, @10° {_fmt(a['@10'])}, "
                  f"@20° {_fmt(a['@20'])}"
                  f"{'; ' + str(a['rotation_only']) + ' pairs with no requested translation scored by rotation alone' if a.get('rotation_only') else ''}"
                  f"</p>")
    return (f"<table><tr><th class='l'>metric</th><th>mean</th><th>std</th><th>n</th></tr>{rows}</table>{extra}")


def summary_rows(rows: dict[str, dict]) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells of a one-row-per-method table (``rows[name] = summary``): metric means (per-frame
    camera errors, not sums), camera failures, pose AUC. Shared by the console and Markdown tables."""
    keys = [k for k in METRIC_ORDER if any(k in r["metrics"] for r in rows.values()) and k not in SUMS]
    seeds = any("seeds" in r for r in rows.values())
    header = ["method"] + (["seeds"] if seeds else []) + [k + (" ↓" if k in LOWER_IS_BETTER else "") for k in keys] + [
        "camera failures", "pose AUC@5/10/20"]
    body = []
    for name, s in rows.items():
        def cell(k):
            if k not in s["metrics"]:
                return "—"
            m = s["metrics"][k]
            spread = m.get("seed_std")
            return _fmt(m["mean"]) + (f" ± {_fmt(spread)}" if spread is not None and not math.isnan(spread) else "")
        cells = [name] + ([",".join(map(str, s.get("seeds", [])))] if seeds else []) + [cell(k) for k in keys]
        f, a = s.get("camera_failures"), s.get("pose_auc")
        cells.append(f"{f['failed']}/{f['attempted']}" if f else "—")
        cells.append(f"{a['@5']:.3f} / {a['@10']:.3f} / {a['@20']:.3f}" if a else "—")
        body.append(cells)
    return header, body


def markdown_table(rows: dict[str, dict]) -> str:
    """:func:`summary_rows` as a Markdown table."""
    header, body = summary_rows(rows)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n"


def write_report(result: EvalResult, out_dir: str | Path, title: str = "mvtrack evaluation", max_clips: int = 16,
                 scale: int = 3, notes: str = "") -> Path:
    """Write ``out_dir/report.html`` with its assets in ``out_dir/assets``; media for the first ``max_clips``
    generated views. Returns the HTML path."""
    out = Path(out_dir)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    s = result.summary
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body><h1>{html.escape(title)}</h1>"]
    if notes:
        parts.append(f"<p class='muted'>{html.escape(notes)}</p>")
    parts.append(f"<p>{s['views_scored']} generated views scored, {s['views_skipped']} skipped. Definitions: "
                 f"METRICS.md; ↓ lower is better.</p><h2>Summary</h2>{_summary_table(s)}")
    if result.skipped:
        items = "".join(f"<li><b>{html.escape(str(x['clip']))}</b> view {x['view']}: {html.escape(x['reason'])}</li>"
                        for x in result.skipped)
        parts.append(f"<h2 class='bad'>Skipped</h2><ul>{items}</ul>")
    keys = [k for k in METRIC_ORDER if k in s["metrics"] and k not in HIDDEN]
    head = "".join(f"<th>{k}</th>" for k in keys)
    body = "".join(
        f"<tr><td class='l'>{html.escape(r.clip)}</td><td>{r.view}</td>"
        + "".join(f"<td>{_fmt(r.metrics.get(k))}</td>" for k in keys)
        + f"<td class='l'>{html.escape(r.camera_failure or '')}</td></tr>"
        for r in result.records
    )
    parts.append(f"<h2>Per view</h2><table><tr><th class='l'>clip</th><th>view</th>{head}"
                 f"<th class='l'>camera failure</th></tr>{body}</table>")
    for r in result.records[:max_clips]:
        art = result.artifacts.get((r.clip, r.view))
        if art is None:
            continue
        stem = f"{r.clip}_v{r.view}"
        grid = _side_by_side(art, scale)
        write_mp4(assets / f"{stem}.mp4", grid)
        T = len(grid)
        strip = _thumbnail(np.concatenate([grid[t] for t in sorted({0, T // 2, T - 1})], axis=0))
        cv2.imwrite(str(assets / f"{stem}.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
        labels = " | ".join(n for n, p in (("source", art.source), ("generated", art.generated),
                                           ("ground truth", art.reference)) if p is not None)
        links = " · ".join(f"<a href='{html.escape(os.path.relpath(path, out))}'>{label}</a>"
                           for label, path in art.files.items())
        figs = [f"<figure><video src='assets/{stem}.mp4' autoplay loop muted playsinline "
                f"poster='assets/{stem}.png'></video><figcaption>{labels} (thumbnail"
                f"{'; full size: ' + links if links else ''})</figcaption></figure>",
                f"<figure><img src='assets/{stem}.png'><figcaption>frames first / middle / last</figcaption></figure>"]
        if art.tracks_pred is not None:
            cv2.imwrite(str(assets / f"{stem}_tracks.png"), cv2.cvtColor(_track_overlay(art, scale), cv2.COLOR_RGB2BGR))
            figs.append(f"<figure><img src='assets/{stem}_tracks.png'><figcaption>last frame: ground truth (rings) vs "
                        f"recovered by flow (dots)</figcaption></figure>")
        if art.c2w_requested is not None:
            _trajectory_plot(assets / f"{stem}_cameras.png", art)
            figs.append(f"<figure><img src='assets/{stem}_cameras.png'><figcaption>camera centres relative to frame 0, "
                        f"scale-normalised</figcaption></figure>")
        metrics = ", ".join(f"{k} {_fmt(r.metrics[k])}" for k in METRIC_ORDER if k in r.metrics)
        parts.append(f"<div class='clip'><h3>{html.escape(r.clip)} · view {r.view}</h3><p class='muted'>{metrics}"
                     f"{' · camera: ' + html.escape(r.camera_failure) if r.camera_failure else ''}</p>"
                     f"<div class='row'>{''.join(figs)}</div></div>")
    parts.append("</body></html>")
    path = out / "report.html"
    path.write_text("\n".join(parts))
    return path
