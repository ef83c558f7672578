"""Classification metrics in pure numpy: no I/O, no torch, no scikit-learn.

Conventions (the same as scikit-learn's with ``zero_division=0``):

* ``confusion_matrix`` rows are true classes, columns predicted classes.
* precision, recall or F1 of a class is 0.0 where it is undefined (a class never predicted has precision 0).
* ``macro_f1`` averages over the classes that occur in ``y_true`` or ``y_pred`` (a class absent from both
  says nothing about the model); ``weighted_f1`` weights by support; ``balanced_accuracy`` is the mean
  recall over the classes present in ``y_true``.
* top-k ranks classes by probability with ties broken towards the lower class index, exactly as
  ``argmax`` does, so top-1 accuracy of ``probs`` equals the accuracy of ``probs.argmax(1)``.

Everything returned by :func:`classification_metrics` is plain Python (JSON-ready); ``class_names`` keeps the
class order, which ``per_class`` loses once a JSON writer sorts its keys.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from clfkit.report.intervals import CI_METHOD, bootstrap_cis, format_interval, wilson

__all__ = [
    "confusion_matrix",
    "classification_metrics",
    "topk_accuracy",
    "log_loss",
    "per_class_table",
    "format_metrics_table",
    "compare_per_class",
]

_LOG_EPS = 1e-15  # probabilities are clipped to [eps, 1] so one confident mistake costs ~34.5, not inf
_PROB_SUM_TOL = 1e-3  # rows of ``probs`` must sum to 1 within this (float16/float32 outputs included)


# --------------------------------------------------------------------------------------------- validation
def _labels(y: ArrayLike, name: str, num_classes: int | None = None) -> np.ndarray:
    """``y`` as a 1-D int64 array of class indices, or ValueError saying what is wrong with it."""
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class indices, got shape {arr.shape}")
    if arr.size == 0:
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices, got non-integral floats")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integer class indices, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if num_classes is not None and arr.size:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name} holds label {bad} but there are {num_classes} classes "
                             f"(valid labels are 0..{num_classes - 1})")
    return arr


def _pair(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    yt = _labels(y_true, "y_true", num_classes)
    yp = _labels(y_pred, "y_pred", num_classes)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} labels but y_pred has {yp.size}; they must match one-to-one")
    return yt, yp


def _probs(probs: ArrayLike, n: int, num_classes: int) -> np.ndarray:
    """``probs`` as float64 (N, C), checked to be a probability distribution per row."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape != (n, num_classes):
        raise ValueError(f"probs must have shape (N, C) = ({n}, {num_classes}), got {p.shape}")
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinity")
    if p.size and (p.min() < 0 or np.abs(p.sum(axis=1) - 1.0).max() > _PROB_SUM_TOL):
        raise ValueError("probs rows must be probabilities (non-negative, summing to 1); "
                         "if these are logits, pass softmax(logits) instead")
    return p


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0.0 where den == 0 (scikit-learn's zero_division=0)."""
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


# --------------------------------------------------------------------------------------------- core metrics
def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int) -> np.ndarray:
    """(C, C) int64 counts: ``cm[i, j]`` = samples of true class ``i`` predicted as ``j``."""
    yt, yp = _pair(y_true, y_pred, num_classes)
    flat = np.bincount(yt * num_classes + yp, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def topk_accuracy(probs: ArrayLike, y_true: ArrayLike, k: int) -> float:
    """Fraction of samples whose true class is among the ``k`` highest-scoring classes.

    Ties are broken towards the lower class index (as ``argmax`` does); ``k >= C`` gives 1.0."""
    yt = _labels(y_true, "y_true")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != yt.size:
        raise ValueError(f"probs must have shape (N, C) with N = {yt.size} labels, got {p.shape}")
    _labels(yt, "y_true", p.shape[1])
    if not np.all(np.isfinite(p)):
        raise ValueError("probs contains NaN or infinity")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if yt.size == 0:
        raise ValueError("no samples: y_true is empty")
    true_score = p[np.arange(yt.size), yt][:, None]  # (N, 1)
    cols = np.arange(p.shape[1])[None, :]  # (1, C)
    # rank of the true class = classes strictly better + equal-scoring classes with a lower index
    rank = np.sum((p > true_score) | ((p == true_score) & (cols < yt[:, None])), axis=1)
    return float(np.mean(rank < k))


def log_loss(probs: ArrayLike, y_true: ArrayLike) -> float:
    """Mean negative log-likelihood of the true class (natural log), probabilities clipped to [1e-15, 1]."""
    yt = _labels(y_true, "y_true")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must have shape (N, C), got {p.shape}")
    p = _probs(p, yt.size, p.shape[1])
    _labels(yt, "y_true", p.shape[1])
    if yt.size == 0:
        raise ValueError("no samples: y_true is empty")
    p = p / p.sum(axis=1, keepdims=True)  # remove float32 rounding so the loss is exact for exact inputs
    picked = np.clip(p[np.arange(yt.size), yt], _LOG_EPS, 1.0)
    return float(-np.mean(np.log(picked)))


def classification_metrics(y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str],
                           probs: ArrayLike | None = None, *, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Accuracy, macro/weighted F1, balanced accuracy and per-class precision/recall/F1/support.

    With ``probs`` (N, C) also ``log_loss`` and, when C > 5, ``top5_accuracy``.  The result is JSON-ready.
    95 % intervals (:mod:`clfkit.report.intervals`): ``accuracy_ci95`` and per class ``recall_ci95`` and
    ``precision_ci95`` are Wilson intervals (None where the count is 0); ``macro_f1_ci95`` and
    ``balanced_accuracy_ci95`` come from a bootstrap of ``n_boot`` resamples of the images seeded with
    ``seed`` (``n_boot=0`` skips it: both are None)."""
    names = [str(n) for n in class_names]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class_names must be unique; repeated: {dupes}")
    num_classes = len(names)
    yt, yp = _pair(y_true, y_pred, num_classes)
    n = yt.size
    if n == 0:
        raise ValueError("no samples: y_true and y_pred are empty, there is nothing to evaluate")

    cm = confusion_matrix(yt, yp, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)  # true samples per class
    predicted = cm.sum(axis=0)  # predictions per class
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)

    present = (support > 0) | (predicted > 0)  # the classes macro-F1 averages over
    boot = (bootstrap_cis(yt, yp, ("macro_f1", "balanced_accuracy"), n_boot, seed, num_classes=num_classes)
            if n_boot else {"macro_f1": None, "balanced_accuracy": None})
    result: dict[str, Any] = {
        "accuracy": float(tp.sum() / n),
        "balanced_accuracy": float(recall[support > 0].mean()),
        "macro_f1": float(f1[present].mean()),
        "weighted_f1": float(np.sum(f1 * support) / n),
        "num_samples": int(n),
        "num_classes": num_classes,
        "class_names": names,
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i]), "precision_ci95": wilson(int(tp[i]), int(predicted[i])),
                   "recall_ci95": wilson(int(tp[i]), int(support[i]))}
            for i, name in enumerate(names)
        },
        "accuracy_ci95": wilson(int(tp.sum()), n),
        "balanced_accuracy_ci95": boot["balanced_accuracy"],
        "macro_f1_ci95": boot["macro_f1"],
        "ci95_method": {**CI_METHOD, "bootstrap_resamples": int(n_boot), "bootstrap_seed": int(seed)},
    }
    if probs is not None:
        p = _probs(probs, n, num_classes)
        if num_classes > 5:
            result["top5_accuracy"] = topk_accuracy(p, yt, 5)
        result["log_loss"] = log_loss(p, yt)
    return result


# --------------------------------------------------------------------------------------------- tables
def _class_order(metrics: Mapping[str, Any]) -> list[str]:
    return list(metrics.get("class_names") or metrics["per_class"].keys())


def _count_lookup(train_counts: Mapping[str, int] | Sequence[int] | None, names: list[str]) -> list[int | None]:
    """Training-image count per class: from a {class: count} mapping or a sequence in class order."""
    if train_counts is None:
        return [None] * len(names)
    if isinstance(train_counts, Mapping):
        return [None if train_counts.get(n) is None else int(train_counts[n]) for n in names]
    counts = list(train_counts)
    if len(counts) != len(names):
        raise ValueError(f"train_counts has {len(counts)} entries but there are {len(names)} classes")
    return [int(c) for c in counts]


def per_class_table(metrics: Mapping[str, Any],
                    train_counts: Mapping[str, int] | Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per class, in class order: class, support, precision, recall, f1, train_count (None if unknown),
    precision_ci95 and recall_ci95 (None where undefined or, in metrics from before intervals, absent)."""
    names = _class_order(metrics)
    counts = _count_lookup(train_counts, names)
    rows = []
    for name, count in zip(names, counts):
        pc = metrics["per_class"][name]
        rows.append({"class": name, "support": int(pc["support"]), "precision": float(pc["precision"]),
                     "recall": float(pc["recall"]), "f1": float(pc["f1"]), "train_count": count,
                     "precision_ci95": pc.get("precision_ci95"), "recall_ci95": pc.get("recall_ci95")})
    return rows


def _clip_name(name: str, width: int) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """A fixed-width text table (class, precision, recall, its 95 % interval, F1, support) and summary lines
    (with their 95 % intervals where the metrics have them) for a terminal."""
    rows = per_class_table(metrics)
    width = min(max([5] + [len(r["class"]) for r in rows]), 32)
    with_ci = any(r["recall_ci95"] is not None for r in rows)
    ci_head = f"  {'recall 95 % CI':>16}" if with_ci else ""
    header = f"{'class':<{width}}  {'precision':>9}  {'recall':>7}{ci_head}  {'F1':>7}  {'support':>7}"
    lines = [header, "-" * len(header)]
    for r in rows:
        ci = f"  {format_interval(r['recall_ci95']):>16}" if with_ci else ""
        lines.append(f"{_clip_name(r['class'], width):<{width}}  {r['precision']:>9.4f}  {r['recall']:>7.4f}{ci}  "
                     f"{r['f1']:>7.4f}  {r['support']:>7d}")
    lines.append("-" * len(header))
    summary = [("accuracy", "accuracy"), ("balanced accuracy", "balanced_accuracy"), ("macro F1", "macro_f1"),
               ("weighted F1", "weighted_f1"), ("top-5 accuracy", "top5_accuracy"), ("log loss", "log_loss")]
    label_width = max(len(label) for label, _ in summary)
    for label, key in summary:
        if metrics.get(key) is not None:
            ci = metrics.get(f"{key}_ci95")
            lines.append(f"{label:<{label_width}}  {metrics[key]:.4f}" + (f"  {format_interval(ci)}" if ci else ""))
    lines.append(f"{'samples':<{label_width}}  {metrics.get('num_samples', sum(r['support'] for r in rows))}")
    if with_ci or metrics.get("accuracy_ci95"):
        lines.append("[lo, hi] = 95 % interval: Wilson for accuracy and recall, bootstrap over images for F1 and "
                     "balanced accuracy")
    return "\n".join(lines)


def compare_per_class(metrics_a: Mapping[str, Any], metrics_b: Mapping[str, Any], label_a: str,
                      label_b: str) -> list[dict[str, Any]]:
    """Per-class recall (= per-class accuracy) of two evaluations of the same data, and ``delta`` = b - a.

    Rows are ``{"class", "support", label_a, label_b, "delta"}`` in class order, then an ``"(overall)"`` row
    with the two accuracies; each row also has ``<label>_ci95``, the 95 % interval of that recall (accuracy), or
    None where the metrics have none.  Both evaluations must cover the same classes and the same samples per
    class."""
    if label_a == label_b or {label_a, label_b} & {"class", "support", "delta"}:
        raise ValueError(f"labels must differ from each other and from 'class', 'support', 'delta'; "
                         f"got {label_a!r} and {label_b!r}")
    names = _class_order(metrics_a)
    if names != _class_order(metrics_b):
        raise ValueError(f"the two evaluations have different classes: {names} vs {_class_order(metrics_b)}")
    rows = []
    for name in names:
        a, b = metrics_a["per_class"][name], metrics_b["per_class"][name]
        if int(a["support"]) != int(b["support"]):
            raise ValueError(f"class {name!r} has {a['support']} samples in {label_a} but {b['support']} in "
                             f"{label_b}; compare evaluations of the same data")
        rows.append({"class": name, "support": int(a["support"]), label_a: float(a["recall"]),
                     label_b: float(b["recall"]), "delta": float(b["recall"]) - float(a["recall"]),
                     f"{label_a}_ci95": a.get("recall_ci95"), f"{label_b}_ci95": b.get("recall_ci95")})
    acc_a, acc_b = float(metrics_a["accuracy"]), float(metrics_b["accuracy"])
    rows.append({"class": "(overall)", "support": sum(r["support"] for r in rows), label_a: acc_a,
                 label_b: acc_b, "delta": acc_b - acc_a, f"{label_a}_ci95": metrics_a.get("accuracy_ci95"),
                 f"{label_b}_ci95": metrics_b.get("accuracy_ci95")})
    return rows
