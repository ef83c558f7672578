"""Report figures as PNG files: training curves, confusion matrix, per-class accuracy, benchmarks, images.

Figures are built on :class:`matplotlib.figure.Figure` objects rendered by the Agg canvas, never through
``pyplot``: nothing global is touched (no backend switch, no figure registry), so these functions are safe in
notebooks, servers and threads and leak no open figures.  Each function writes its PNG atomically
(:func:`clfkit.report.io.atomic_path`) and returns the path.  No torch import.
"""
from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator, PercentFormatter
from PIL import Image

from clfkit.io import atomic_path
from clfkit.report.calibration import Reliability
from clfkit.report.coverage import TARGETS, CoverageCurve
from clfkit.report.metrics import per_class_table

__all__ = [
    "plot_curves",
    "plot_confusion_matrix",
    "plot_per_class",
    "plot_reliability",
    "plot_coverage",
    "plot_latency",
    "plot_throughput",
    "image_panel",
    "image_grid",
]

_DPI = 110
_GOOD, _BAD, _NEUTRAL, _COUNT = "#2e7d32", "#c62828", "#5b7fa6", "#e07b39"
_MAX_THUMB = 512  # images are shrunk to this many pixels on the long side before drawing
_HEAT_CMAP = "turbo"  # occlusion heat maps: dark blue (little) to red (the prediction rests on it)
_MIN_HEAT = 0.05  # heat (a share of the probability lost) of at least this is needed for full colour


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas explicitly: no pyplot, no backend selection
    return fig


def _save(fig: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    fig.clear()
    return path


def _value(row: Mapping[str, Any], key: str) -> float | None:
    """row[key] as a float, or None when missing, None or NaN."""
    v = row.get(key)
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _no_data(ax, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


# --------------------------------------------------------------------------------------------- training
def plot_curves(history: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Loss (train_loss, val_loss) and accuracy (train_acc, val_acc) per epoch, side by side.

    Missing keys and None/NaN values are skipped; the epoch with the lowest val_loss gets a dotted line."""
    epochs = [(_value(h, "epoch") if _value(h, "epoch") is not None else i + 1) for i, h in enumerate(history)]
    fig = _new_figure(11, 4.2)
    ax_loss, ax_acc = fig.subplots(1, 2)
    val_loss = [(e, _value(h, "val_loss")) for e, h in zip(epochs, history) if _value(h, "val_loss") is not None]
    best = min(val_loss, key=lambda ev: ev[1])[0] if val_loss else None
    for ax, keys, ylabel in ((ax_loss, ("train_loss", "val_loss"), "loss"),
                             (ax_acc, ("train_acc", "val_acc"), "accuracy")):
        drawn = False
        for key, style in zip(keys, ("-o", "-s")):
            pts = [(e, _value(h, key)) for e, h in zip(epochs, history) if _value(h, key) is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, style, markersize=3, label=key.replace("_", " "))
                drawn = True
        if best is not None:
            ax.axvline(best, color="0.35", linestyle=":", linewidth=1.2, label=f"best epoch ({best:g})")
        if drawn:
            ax.legend(fontsize=8)
        else:
            _no_data(ax)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    ax_loss.set_title("Loss")
    ax_acc.set_title("Accuracy")
    if epochs and all(float(e).is_integer() for e in epochs):
        for ax in (ax_loss, ax_acc):
            ax.xaxis.get_major_locator().set_params(integer=True)
    return _save(fig, path)


def plot_confusion_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike,
                          normalize: bool = True) -> Path:
    """Heatmap of a (C, C) confusion matrix (rows true, columns predicted) with the counts written in.

    ``normalize`` colours each row by its fraction (recall on the diagonal); zero cells stay blank."""
    cm = np.asarray(cm)
    names = [str(n) for n in class_names]
    c = len(names)
    if cm.shape != (c, c):
        raise ValueError(f"confusion matrix has shape {cm.shape} but there are {c} class names")
    if normalize:
        rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
        shade = np.divide(cm, rows, out=np.zeros(cm.shape, np.float64), where=rows > 0)
        vmax = 1.0
    else:
        shade = cm.astype(np.float64)
        vmax = max(float(shade.max()), 1.0)
    side = max(4.5, 0.42 * c + 2.8)
    fig = _new_figure(side + 1.0, side)
    ax = fig.subplots()
    im = ax.imshow(shade, cmap="Blues", vmin=0.0, vmax=vmax, interpolation="nearest")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    fontsize = max(6.0, min(10.0, 140.0 / max(c, 1)))
    for i in range(c):
        for j in range(c):
            if cm[i, j]:
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=fontsize,
                        color="white" if shade[i, j] > 0.55 * vmax else "black")
    ax.set_xticks(range(c), names, rotation=45 if c > 1 else 0, ha="right" if c > 1 else "center",
                  rotation_mode="anchor", fontsize=max(7.0, min(10.0, 160.0 / max(c, 1))))
    ax.set_yticks(range(c), names, fontsize=max(7.0, min(10.0, 160.0 / max(c, 1))))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    total = int(cm.sum())
    acc = float(np.trace(cm)) / total if total else 0.0
    ax.set_title(f"Confusion matrix{' (row-normalised)' if normalize else ''} — accuracy {acc:.1%}, n={total}")
    return _save(fig, path)


def plot_per_class(metrics: Mapping[str, Any], path: str | os.PathLike,
                   train_counts: Mapping[str, int] | Sequence[int] | None = None) -> Path:
    """Per-class accuracy (recall) as bars; with ``train_counts``, training images per class on a second axis.

    This is the "does accuracy follow the amount of training data?" figure."""
    rows = per_class_table(metrics, train_counts)
    names = [r["class"] for r in rows]
    counts = [r["train_count"] for r in rows]
    with_counts = any(cnt is not None for cnt in counts)
    x = np.arange(len(rows))
    width = 0.4 if with_counts else 0.7
    fig = _new_figure(max(6.5, (0.6 if with_counts else 0.45) * len(rows) + 2.5), 4.8)
    ax = fig.subplots()
    # twin bars: accuracy on the left axis, training images on the right axis, side by side per class
    bars = ax.bar(x - width / 2 if with_counts else x, [r["recall"] for r in rows], width, color=_NEUTRAL,
                  label="test accuracy (recall)")
    if len(rows) <= 30:
        ax.bar_label(bars, labels=[f"{r['recall']:.0%}" for r in rows], fontsize=7 if len(rows) > 10 else 8,
                     padding=2)
    if metrics.get("accuracy") is not None:
        ax.axhline(float(metrics["accuracy"]), color="0.3", linestyle="--", linewidth=1,
                   label=f"overall accuracy {float(metrics['accuracy']):.1%}")
    ax.set_ylim(0, 1.1)
    pad = max(0.0, (4 - len(rows)) / 2)  # keep bars bar-shaped when there are only a few classes
    ax.set_xlim(-0.6 - pad, len(rows) - 0.4 + pad)
    ax.set_ylabel("accuracy (recall)")
    ax.set_xticks(x, names, rotation=45 if len(rows) > 1 else 0, ha="right" if len(rows) > 1 else "center",
                  rotation_mode="anchor", fontsize=8 if len(rows) > 12 else 9)
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if with_counts:
        ax2 = ax.twinx()
        ys = [np.nan if cnt is None else cnt for cnt in counts]
        bars2 = ax2.bar(x + width / 2, ys, width, color=_COUNT, alpha=0.85, label="training images")
        ax2.set_ylabel("training images", color=_COUNT)
        ax2.tick_params(axis="y", colors=_COUNT)
        ax2.set_ylim(0, max(c for c in counts if c is not None) * 1.1 + 1)
        handles.append(bars2)
        labels.append("training images")
    # legend in a row above the axes (bars fill the plot area; a legend inside would hide some)
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=8,
              frameon=False)
    fig.suptitle("Per-class accuracy" + (" vs training images" if with_counts else ""), fontsize=12)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- calibration
def plot_reliability(curves: Mapping[str, Reliability], path: str | os.PathLike, title: str = "") -> Path:
    """Reliability diagram: accuracy vs confidence per bin for each curve (e.g. before and after the
    temperature) on one plot, the diagonal being perfect calibration, and how many predictions fall in each
    bin below it.  ``curves`` maps a legend label to :func:`clfkit.report.calibration.reliability` data."""
    fig = _new_figure(6.5, 6.2)
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.plot([0, 1], [0, 1], color="0.55", linestyle="--", linewidth=1, label="perfectly calibrated")
    styles = ("o-", "s-", "^-", "d-")
    for k, (label, rel) in enumerate(curves.items()):
        used = rel.count > 0  # each point at its bin's mean confidence, so the gap to the diagonal is the error
        line, = ax.plot(rel.confidence[used], rel.accuracy[used], styles[k % len(styles)], markersize=4,
                        label=f"{label}: ECE {100 * rel.ece:.2f} %")
        width = (rel.edges[1] - rel.edges[0]) / max(len(curves), 1)
        ax_n.bar(rel.edges[:-1] + (k + 0.5) * width, rel.count, width * 0.9, color=line.get_color(), alpha=0.8)
    if not curves:
        _no_data(ax)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_ylabel("accuracy in the bin")
    ax.set_title(title or "Reliability: accuracy vs confidence")
    ax.legend(fontsize=8, loc="upper left")
    ax.grid(alpha=0.3)
    ax_n.set_xlabel("confidence (top probability)")
    ax_n.set_ylabel("predictions")
    ax_n.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- coverage
def plot_coverage(curve: CoverageCurve, path: str | os.PathLike, metrics: Mapping[str, Any] | None = None) -> Path:
    """Accuracy of the kept predictions against their share (coverage) as the reject threshold rises, and both
    against the threshold.  From ``metrics`` (:func:`clfkit.report.coverage.coverage_metrics`) the thresholds
    for 95 % and 99 % accuracy and the run's ``--reject-below`` are marked."""
    metrics = metrics or {}
    fig = _new_figure(11, 4.4)
    ax, ax_t = fig.subplots(1, 2)
    marks = [(f"{round(100 * t)} % accuracy", metrics.get(f"reject_below_for_{round(100 * t)}"), style)
             for t, style in zip(TARGETS, ("o", "s"))]
    marks.append(("--reject-below", metrics.get("kept_at_reject_below"), "D"))
    if curve.total:
        ax.plot(curve.coverage, curve.accuracy, color=_NEUTRAL, linewidth=1.5)
        # A threshold between two top probabilities keeps what the higher one keeps: steps, thresholds rising.
        # From threshold 0 (everything kept) to 1 (nothing kept past the most confident prediction).
        rising = np.concatenate([[0.0], curve.threshold[::-1], [1.0]])
        accuracy = np.concatenate([curve.accuracy[-1:], curve.accuracy[::-1], [np.nan]])
        coverage = np.concatenate([[1.0], curve.coverage[::-1], [0.0]])
        ax_t.step(rising, accuracy, where="pre", color=_NEUTRAL, label="accuracy of the kept")
        ax_t.step(rising, coverage, where="pre", color=_COUNT, label="coverage (share kept)")
        for t in TARGETS:
            ax.axhline(t, color="0.6", linestyle=":", linewidth=1)
        for label, point, style in marks:
            if point and point.get("accuracy") is not None:
                ax.plot(point["coverage"], point["accuracy"], style, color=_GOOD if "accuracy" in label else _BAD,
                        markersize=7, label=f"{label}: threshold {point['threshold']:g}, "
                                            f"coverage {point['coverage']:.1%}")
                ax_t.axvline(point["threshold"], color="0.5", linestyle=":", linewidth=1)
        if ax.get_legend_handles_labels()[0]:  # no mark when no threshold reaches a target
            ax.legend(fontsize=8, loc="lower left")
        ax_t.legend(fontsize=8, loc="lower left")
        low = float(np.min(curve.accuracy[curve.kept > 0]))
        ax.set_ylim(max(0.0, min(low, 0.9) - 0.02), 1.005)
    else:
        _no_data(ax)
        _no_data(ax_t)
    ax.set_xlim(0, 1.01)
    ax.set_xlabel("coverage: share of predictions kept")
    ax.set_ylabel("accuracy of the kept predictions")
    ax.set_title(f"Accuracy vs coverage ({curve.total} images)")
    ax.grid(alpha=0.3)
    ax_t.set_xlim(0, 1)
    ax_t.set_ylim(0, 1.02)
    ax_t.set_xlabel("threshold: --reject-below (top probability)")
    ax_t.set_title("Kept share and accuracy by threshold")
    ax_t.grid(alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- benchmarks
def _by_backend(rows: Sequence[Mapping[str, Any]], key: str) -> dict[str, dict[int, float]]:
    """{backend: {batch_size: value}} in first-seen backend order; rows without a value are skipped."""
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        if "backend" not in row or "batch_size" not in row:
            raise ValueError(f"benchmark row {dict(row)} needs 'backend' and 'batch_size' keys")
        value = _value(row, key)
        series = out.setdefault(str(row["backend"]), {})
        if value is not None:
            series[int(row["batch_size"])] = value
    return out


def _batch_axis(ax, batch_sizes: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size")


def plot_latency(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Median latency per batch (``p50_ms``) vs batch size, one line per ``backend``, log-x."""
    series = _by_backend(rows, "p50_ms")
    fig = _new_figure(7, 4.5)
    ax = fig.subplots()
    sizes = sorted({b for s in series.values() for b in s})
    for backend, points in series.items():
        if points:
            bs = sorted(points)
            ax.plot(bs, [points[b] for b in bs], "o-", markersize=4, label=backend)
    if sizes:
        _batch_axis(ax, sizes)
        values = [v for s in series.values() for v in s.values()]
        if min(values) > 0 and max(values) / min(values) > 50:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    else:
        _no_data(ax)
        ax.set_xlabel("batch size")
    ax.set_ylabel("p50 latency per batch (ms)")
    ax.set_title("Latency vs batch size")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_throughput(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Throughput (``images_per_s``) as grouped bars: one group per batch size, one bar per ``backend``."""
    series = _by_backend(rows, "images_per_s")
    sizes = sorted({b for s in series.values() for b in s})
    backends = list(series)
    fig = _new_figure(max(7.0, 1.0 + len(sizes) * (0.35 * max(len(backends), 1) + 0.5)), 4.5)
    ax = fig.subplots()
    width = 0.8 / max(len(backends), 1)
    x = np.arange(len(sizes))
    top = 0.0
    for k, backend in enumerate(backends):
        points = series[backend]
        ys = [points.get(b, np.nan) for b in sizes]
        bars = ax.bar(x + (k - (len(backends) - 1) / 2) * width, ys, width * 0.95, label=backend)
        if len(sizes) * len(backends) <= 40:
            ax.bar_label(bars, labels=["" if np.isnan(v) else f"{v:,.0f}" for v in ys], fontsize=7,
                         rotation=90, padding=2)
        top = max([top] + [v for v in ys if not np.isnan(v)])
    if sizes:
        ax.set_xticks(x, [str(b) for b in sizes])
        ax.set_ylim(0, top * 1.25 if top > 0 else 1)
        ax.legend(fontsize=8, loc="upper left")
    else:
        _no_data(ax)
    ax.set_xlabel("batch size")
    ax.set_ylabel("images / s")
    ax.set_title("Throughput by backend")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- images
def _thumb(image: Image.Image, size: int = _MAX_THUMB) -> np.ndarray:
    img = image.convert("RGB") if image.mode != "RGB" else image.copy()
    img.thumbnail((size, size))
    return np.asarray(img)


def _heat_scale(heats: Sequence[np.ndarray]) -> float:
    """The heat drawn at full colour: the largest shown, but never below _MIN_HEAT, so a photo whose
    prediction no patch moves gets a faint overlay instead of its smallest wobbles stretched to full colour."""
    return max([_MIN_HEAT, *(float(np.nanmax(h)) for h in heats if h.size)])


def _draw_heat(ax, crop: np.ndarray, heat: np.ndarray, vmax: float):
    """The model's crop with the heat map over it: colour and opacity grow with the drop (none where hiding the
    region did not lower the probability), so the photo stays readable where the evidence is not."""
    ax.imshow(crop)
    level = np.clip(np.nan_to_num(heat) / vmax, 0.0, 1.0)
    shown = ax.imshow(level * vmax, cmap=_HEAT_CMAP, vmin=0.0, vmax=vmax, alpha=0.15 + 0.55 * level,
                      extent=(-0.5, crop.shape[1] - 0.5, crop.shape[0] - 0.5, -0.5), interpolation="bilinear")
    ax.set_axis_off()
    return shown


def image_panel(image: Image.Image, topk: Sequence[tuple[str, float]], path: str | os.PathLike,
                title: str | None = None, true_label: str | None = None,
                overlays: Sequence[tuple[str, np.ndarray, np.ndarray]] = ()) -> Path:
    """The photo beside a horizontal bar chart of its top-k predictions (highest on top).

    With ``true_label`` the title is green when the top prediction is right and red when wrong, and the true
    class's bar (if listed) is green.  Each of ``overlays`` (title, the model's uint8 (S, S, 3) crop, a float
    (S, S) heat map: the share of the class's probability lost when that region is hidden,
    :mod:`clfkit.runtime.explain`) is drawn between the photo and the bars, each on its own scale with a colour
    bar."""
    n = len(overlays)
    fig = _new_figure(10 + 3.4 * n, 4.2)
    axes = fig.subplots(1, 2 + n, width_ratios=[1.1, *([1.0] * n), 1])
    ax_img, ax_bar = axes[0], axes[-1]
    ax_img.imshow(_thumb(image))
    ax_img.set_axis_off()
    for ax, (heading, crop, heat) in zip(axes[1:-1], overlays):
        # each map on its own scale: a mistake's true class often loses half of its little probability where
        # the predicted class loses a few per cent, and one shared scale would blank the prediction's map
        shown = _draw_heat(ax, crop, heat, _heat_scale([heat]))
        ax.set_title("\n".join(textwrap.shorten(line, 44, placeholder="…") for line in str(heading).splitlines()),
                     fontsize=9)
        fig.colorbar(shown, ax=ax, shrink=0.85, location="bottom", format=PercentFormatter(1.0, decimals=0),
                     label="its probability lost when hidden")
    labels = [str(name) for name, _ in topk]
    scores = [float(p) for _, p in topk]
    correct = bool(labels) and true_label is not None and labels[0] == true_label
    colors = []
    for i, name in enumerate(labels):
        if true_label is not None and name == true_label:
            colors.append(_GOOD)
        elif true_label is not None and i == 0:
            colors.append(_BAD)
        else:
            colors.append(_NEUTRAL)
    y = np.arange(len(labels))[::-1]  # first (highest) prediction at the top
    bars = ax_bar.barh(y, scores, color=colors, height=0.65)
    ax_bar.bar_label(bars, labels=[f"{s:.1%}" for s in scores], fontsize=8, padding=3)
    ax_bar.set_yticks(y, [textwrap.shorten(n, 28, placeholder="…") for n in labels], fontsize=9)
    ax_bar.set_xlim(0, 1.15)
    ax_bar.set_xlabel("probability")
    ax_bar.spines[["top", "right"]].set_visible(False)
    if not labels:
        _no_data(ax_bar, "no predictions")
    if title is None:
        top = labels[0] if labels else "?"
        title = f"predicted: {top}" + (f"   (true: {true_label})" if true_label is not None else "")
    color = "black" if true_label is None else (_GOOD if correct else _BAD)
    fig.suptitle(title, color=color, fontsize=12)
    return _save(fig, path)


def image_grid(items: Sequence[tuple[Image.Image, str]], path: str | os.PathLike, cols: int = 6,
               title: str | None = None,
               overlays: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None) -> Path:
    """Thumbnails with captions in a grid of ``cols`` columns (per-category and misclassified galleries).

    ``overlays[k]`` (the model's uint8 crop, its float heat map; see :func:`image_panel`), where given, is drawn
    in cell k instead of the photo, on that photo's own colour scale (each cell's strongest evidence in full
    colour, at least _MIN_HEAT)."""
    if cols < 1:
        raise ValueError(f"cols must be at least 1, got {cols}")
    n = len(items)
    if overlays is not None and len(overlays) != n:
        raise ValueError(f"{len(overlays)} overlays for {n} images")
    overlays = list(overlays) if overlays is not None else [None] * n
    cols = max(1, min(cols, n))
    nrows = max(1, math.ceil(n / cols))
    thumbs = [_thumb(image, 256) if over is None else over[0] for (image, _), over in zip(items, overlays)]
    captions = []
    for _, caption in items:
        lines = [textwrap.shorten(part, 60, placeholder="…") for part in str(caption).splitlines()] or [""]
        captions.append("\n".join(textwrap.fill(line, 24) for line in lines[:3]))
    # row height from the typical aspect ratio and the tallest caption, so rows sit without big gaps
    aspect = float(np.clip(np.median([t.shape[0] / t.shape[1] for t in thumbs]), 0.5, 1.5)) if thumbs else 1.0
    caption_lines = max([c.count("\n") + 1 for c in captions] or [1])
    cell_w = 2.2
    fig = _new_figure(max(cell_w * cols, 4.0),
                      nrows * (cell_w * aspect + 0.16 * caption_lines + 0.15) + (0.45 if title else 0.1))
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, thumb, caption, over in zip(axes, thumbs, captions, overlays):
        if over is None:
            ax.imshow(thumb)
        else:
            _draw_heat(ax, over[0], over[1], _heat_scale([over[1]]))
        ax.set_title(caption, fontsize=7)
    if n == 0:
        _no_data(axes[0], "no images")
    if title:  # wrapped to the figure's width (about 9 characters an inch at this size): a narrow grid clipped it
        width = fig.get_size_inches()[0]
        fig.suptitle(textwrap.fill(title, max(20, int(9 * width))), fontsize=12 if width >= 6 else 9)
    return _save(fig, path)
