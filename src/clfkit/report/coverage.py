"""Accuracy against coverage: what answering "unknown" below a top probability buys.  Pure numpy: no I/O, no torch.

A prediction is *kept* when its top probability is at least the threshold (:func:`is_kept`: the one rule
``--reject-below`` applies at inference), else it becomes "unknown".  On a labelled split every threshold has
a *coverage* (the share of predictions kept) and an *accuracy* (the share of the kept ones that are right):

* :func:`coverage_curve`: one point per distinct top probability, from the most confident prediction alone to
  every prediction kept (the plot of ``coverage.png``).
* :func:`at_threshold`: coverage and accuracy for one threshold.
* :func:`threshold_for`: the lowest threshold (= the highest coverage) whose kept predictions reach a target
  accuracy on this split, or None when no threshold does.
* :func:`coverage_metrics`: what ``metrics.json`` holds (``reject_below_for_95``, ``reject_below_for_99``,
  a compact ``coverage_curve`` table, and ``kept_at_reject_below`` for a run with ``--reject-below``).

Thresholds are the split's own top probabilities rounded *down* to :data:`THRESHOLD_DIGITS` decimals, so a
printed threshold given back as ``--reject-below`` keeps exactly the predictions counted for it.  They are
measured on one split: a threshold chosen on the test split and reported on it is optimistic; choose it on a
validation split to trust it on new photos.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["THRESHOLD_DIGITS", "TARGETS", "TABLE_THRESHOLDS", "CoverageCurve", "is_kept", "coverage_curve",
           "at_threshold", "threshold_for", "coverage_metrics"]

THRESHOLD_DIGITS = 6  # as the probabilities of every output (clfkit.runtime.records.DIGITS)
TARGETS = (0.95, 0.99)  # accuracies metrics.json gives the threshold for (reject_below_for_95, _99)
TABLE_THRESHOLDS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)  # the compact curve table of metrics.json


def is_kept(top_prob: float | np.ndarray, threshold: float | None) -> bool | np.ndarray:
    """The rejection rule: a prediction is kept when its top probability is at least ``threshold`` (None:
    everything is kept); one below it is "unknown"."""
    if threshold is None:
        return np.ones_like(top_prob, dtype=bool) if isinstance(top_prob, np.ndarray) else True
    return top_prob >= threshold


@dataclass(frozen=True)
class CoverageCurve:
    """Points in order of falling threshold (rising coverage); each array has one entry per point."""

    threshold: np.ndarray  # float64: keep predictions whose top probability is >= this
    kept: np.ndarray  # int64: predictions kept
    right: np.ndarray  # int64: right among the kept
    coverage: np.ndarray  # float64: kept / total
    accuracy: np.ndarray  # float64: right among the kept
    total: int


def _top_and_correct(probs: ArrayLike, y_true: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """(top probability, whether argmax is the true class) per row; argmax breaks ties to the lower index, as
    the predictions do."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true)
    if p.ndim != 2 or y.shape != (p.shape[0],):
        raise ValueError(f"probs must be (N, C) and y_true (N,); got {p.shape} and {y.shape}")
    return p.max(axis=1), p.argmax(axis=1) == y


def _floor(values: np.ndarray) -> np.ndarray:
    scale = 10.0 ** THRESHOLD_DIGITS
    floored = np.floor(values * scale) / scale
    return np.minimum(floored, values)  # never above the value itself, whatever the float rounding


def _counts(top: np.ndarray, correct: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(kept, right among the kept) for each threshold: :func:`is_kept` for every threshold at once, in
    O(N log N) rather than a mask per threshold (tests hold the two to the same counts)."""
    order = np.argsort(-top, kind="stable")
    ranked = top[order]  # (N,) falling
    right = np.concatenate([[0], np.cumsum(correct[order])])  # right[k]: right among the k most confident
    # Kept at t: every prediction with top >= t, i.e. the first k of the falling ranking.
    kept = np.searchsorted(-ranked, -np.asarray(thresholds, dtype=np.float64), side="right")
    return kept.astype(np.int64), right[kept].astype(np.int64)


def coverage_curve(probs: ArrayLike, y_true: ArrayLike) -> CoverageCurve:
    """The accuracy/coverage curve of ``probs`` (N, C) against the true classes ``y_true`` (N,)."""
    top, correct = _top_and_correct(probs, y_true)
    thresholds = np.unique(_floor(top))[::-1]  # falling: the most confident prediction first
    kept, right = _counts(top, correct, thresholds)
    n = len(top)
    accuracy = np.divide(right, kept, out=np.zeros(len(kept)), where=kept > 0)
    coverage = kept / n if n else np.zeros(len(kept))
    return CoverageCurve(thresholds, kept, right, coverage, accuracy, n)


def _point(threshold: float, kept: int, right: int, total: int) -> dict[str, Any]:
    return {"threshold": float(threshold), "kept": int(kept), "coverage": kept / total if total else 0.0,
            "accuracy": right / kept if kept else None}


def at_threshold(probs: ArrayLike, y_true: ArrayLike, threshold: float) -> dict[str, Any]:
    """``{"threshold", "kept", "coverage", "accuracy"}`` (accuracy None when nothing is kept)."""
    top, correct = _top_and_correct(probs, y_true)
    kept = is_kept(top, threshold)
    return _point(threshold, int(kept.sum()), int(correct[kept].sum()), len(top))


def threshold_for(curve: CoverageCurve, accuracy: float) -> dict[str, Any] | None:
    """The point of highest coverage whose kept predictions are at least ``accuracy`` right:
    ``{"threshold", "kept", "coverage", "accuracy"}``, or None when no threshold reaches it."""
    # right / kept >= accuracy, in counts: exactly 95 % (19 of 20) reaches 0.95
    reach = np.flatnonzero((curve.kept > 0) & (curve.right >= accuracy * curve.kept - 1e-9))
    if not len(reach):
        return None
    i = int(reach[-1])  # the last point reaching it has the lowest threshold, so the most kept
    return _point(curve.threshold[i], int(curve.kept[i]), int(curve.right[i]), curve.total)


def coverage_metrics(probs: ArrayLike, y_true: ArrayLike, reject_below: float | None = None) -> dict[str, Any]:
    """The metrics.json keys: ``reject_below_for_95`` and ``reject_below_for_99`` (see :func:`threshold_for`),
    ``coverage_curve`` (:func:`at_threshold` at :data:`TABLE_THRESHOLDS` and ``reject_below``) and, with
    ``reject_below``, ``kept_at_reject_below``."""
    curve = coverage_curve(probs, y_true)
    result: dict[str, Any] = {f"reject_below_for_{round(t * 100)}": threshold_for(curve, t) for t in TARGETS}
    table = sorted({*TABLE_THRESHOLDS, *([reject_below] if reject_below is not None else [])})
    result["coverage_curve"] = [at_threshold(probs, y_true, t) for t in table]
    if reject_below is not None:
        result["kept_at_reject_below"] = at_threshold(probs, y_true, reject_below)
    return result
