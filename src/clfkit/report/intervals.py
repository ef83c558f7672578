"""95 % confidence intervals for classification metrics.  Pure numpy: no I/O, no torch, no scipy.

Which interval for which number, and why:

* A **proportion** (accuracy, per-class recall, per-class precision) is k successes out of n independent
  trials, so it gets the **Wilson score interval** (:func:`wilson`).  Unlike the textbook normal ("Wald")
  interval it stays inside [0, 1], is not zero-width at 0 % or 100 %, and keeps close to its nominal
  coverage down to small n; it needs no resampling, so it is exact and free.  A class's precision is
  treated as a proportion of the n images predicted as that class (conditional on that count).
* **Macro-F1** (and balanced accuracy) is not a proportion of anything: it is a non-linear function of the
  whole confusion matrix.  It gets a **percentile bootstrap over images** (:func:`bootstrap_ci`): resample the
  N (true, predicted) pairs with replacement ``n_boot`` times, recompute the statistic on each resample exactly
  as :func:`clfkit.report.metrics.classification_metrics` does (macro-F1 over the classes present in that
  resample, balanced accuracy over the classes with support in it) and take the 2.5th and 97.5th
  percentiles.  The bootstrap is seeded, so the same data give the same interval on every run.

Undefined cases return ``None`` (``null`` in JSON), never ``[nan, nan]``: :func:`wilson` with n = 0 (a class
with no support has no recall interval, a class never predicted no precision interval) and
:func:`bootstrap_ci` on no samples.  A bootstrap cannot show variation the sample does not have: with one
image, or with every prediction right, its interval is a single point (``[1.0, 1.0]``); the Wilson interval
of the same accuracy is the honest one (for 50 of 50 it is [0.929, 1.0]).  Percentile intervals are not
forced to contain the point estimate; on small or lopsided samples they occasionally do not.

Intervals are ``[lo, hi]`` lists of Python floats, ready for JSON.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Z95", "CI_METHOD", "BOOTSTRAP_STATISTICS", "wilson", "bootstrap_ci", "bootstrap_cis", "format_interval"]

Z95 = 1.96  # the two-sided 95 % normal quantile, rounded as it is usually published
# Which interval each reported number carries (kept in metrics.json so a reader need not guess).
CI_METHOD = {"level": 0.95, "proportions": "wilson (accuracy, per-class recall and precision)",
             "macro_f1": "percentile bootstrap over images", "balanced_accuracy": "percentile bootstrap over images"}
_LEVEL = 0.95
# Resampled labels held at once: n_boot x N int64 gathers are made in chunks of about this many elements,
# so 1000 resamples of 1M images need ~50 MB, not 8 GB.
_CHUNK_ELEMENTS = 2_000_000

# A statistic computed from per-resample counts, each (B, C) int64: true positives, support, predicted.
CountStatistic = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


# --------------------------------------------------------------------------------------------- Wilson
def wilson(k: int, n: int, z: float = Z95) -> list[float] | None:
    """The Wilson score interval ``[lo, hi]`` for the proportion k / n; None when n == 0 (nothing was counted).

    ``z`` is the normal quantile (1.96 for 95 %).  The interval always contains k / n and lies in [0, 1]."""
    if isinstance(k, bool) or isinstance(n, bool) or int(k) != k or int(n) != n:
        raise ValueError(f"wilson needs whole counts, got k={k!r}, n={n!r}")
    k, n = int(k), int(n)
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"wilson needs 0 <= k <= n, got k={k}, n={n}")
    if not (z > 0 and math.isfinite(z)):
        raise ValueError(f"z must be a positive finite number, got {z!r}")
    if n == 0:
        return None
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    # In exact arithmetic lo <= p <= hi and lo == 0 at k == 0 (hi == 1 at k == n); clamp away float rounding.
    lo = 0.0 if k == 0 else min(max(center - half, 0.0), p)
    hi = 1.0 if k == n else max(min(center + half, 1.0), p)
    return [lo, hi]


# --------------------------------------------------------------------------------------------- bootstrap
def _accuracy(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    return tp.sum(axis=1) / support.sum(axis=1)


def _macro_f1(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    # F1 = 2 tp / (support + predicted): the same as 2PR / (P + R) with zero_division=0, without the 0/0s
    den = support + predicted
    f1 = np.divide(2.0 * tp, den, out=np.zeros(tp.shape), where=den > 0)
    present = den > 0  # in y_true or y_pred of this resample: the classes macro-F1 averages over
    return f1.sum(axis=1) / present.sum(axis=1)


def _balanced_accuracy(tp: np.ndarray, support: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    recall = np.divide(tp, support, out=np.zeros(tp.shape), where=support > 0)
    return recall.sum(axis=1) / (support > 0).sum(axis=1)


BOOTSTRAP_STATISTICS: dict[str, CountStatistic] = {
    "accuracy": _accuracy,
    "macro_f1": _macro_f1,
    "balanced_accuracy": _balanced_accuracy,
}

Statistic = Union[str, CountStatistic]


def _labels(y: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class indices, got shape {arr.shape}")
    if arr.size and (arr.dtype.kind not in "iuf" or not np.all(arr == np.round(arr)) or arr.min() < 0):
        raise ValueError(f"{name} must hold non-negative integer class indices")
    return arr.astype(np.int64)


def _resolve(statistic: Statistic) -> CountStatistic:
    if callable(statistic):
        return statistic
    try:
        return BOOTSTRAP_STATISTICS[statistic]
    except KeyError:
        raise ValueError(f"unknown bootstrap statistic {statistic!r}; choose one of "
                         f"{sorted(BOOTSTRAP_STATISTICS)} or pass a function of (tp, support, predicted)") from None


def bootstrap_cis(y_true: ArrayLike, y_pred: ArrayLike, statistics: Sequence[Statistic] = ("macro_f1",),
                  n_boot: int = 1000, seed: int = 0, *, num_classes: int | None = None,
                  level: float = _LEVEL) -> dict[str, list[float] | None]:
    """Percentile-bootstrap intervals of several statistics from the same resamples, keyed by name.

    Resample ``b`` is row ``b`` of ``np.random.default_rng(seed).integers(0, N, size=(n_boot, N))``: image
    indices drawn with replacement.  Each resample is reduced to per-class counts with one ``bincount`` over
    all resamples at once (``resample * C + class``), so no Python loop runs per resample.  A statistic is a
    name in :data:`BOOTSTRAP_STATISTICS` or a function of the (B, C) count arrays ``(tp, support, predicted)``
    returning (B,) values (keyed by its ``__name__``); resamples where it is not finite are dropped, and a
    statistic with no finite value gets None.  Every interval is None when there are no samples."""
    yt, yp = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if yt.shape != yp.shape:
        raise ValueError(f"y_true has {yt.size} labels but y_pred has {yp.size}; they must match one-to-one")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive whole number of resamples, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (0.95 for a 95 % interval), got {level!r}")
    funcs = {(s if isinstance(s, str) else getattr(s, "__name__", repr(s))): _resolve(s) for s in statistics}
    n = yt.size
    if n == 0:
        return {name: None for name in funcs}
    c = int(max(yt.max(), yp.max())) + 1 if num_classes is None else int(num_classes)
    if c <= max(int(yt.max()), int(yp.max())):
        raise ValueError(f"labels go up to {max(int(yt.max()), int(yp.max()))} but num_classes is {c}")
    correct = yt == yp

    rng = np.random.default_rng(seed)
    values: dict[str, list[np.ndarray]] = {name: [] for name in funcs}
    rows = max(1, _CHUNK_ELEMENTS // n)
    for start in range(0, int(n_boot), rows):
        b = min(rows, int(n_boot) - start)
        idx = rng.integers(0, n, size=(b, n))  # (b, N); chunks draw the same stream as one big call
        offset = (np.arange(b, dtype=np.int64) * c)[:, None]  # (b, 1): resample r owns bins r*C .. r*C+C-1
        true_bins = (offset + yt[idx]).ravel()
        support = np.bincount(true_bins, minlength=b * c).reshape(b, c)
        predicted = np.bincount((offset + yp[idx]).ravel(), minlength=b * c).reshape(b, c)
        tp = np.bincount(true_bins[correct[idx].ravel()], minlength=b * c).reshape(b, c)
        for name, func in funcs.items():
            values[name].append(np.asarray(func(tp, support, predicted), dtype=np.float64).reshape(b))
    tail = 100.0 * (1.0 - level) / 2.0
    out: dict[str, list[float] | None] = {}
    for name, parts in values.items():
        v = np.concatenate(parts)
        v = v[np.isfinite(v)]
        if v.size == 0:
            out[name] = None
            continue
        lo, hi = np.percentile(v, [tail, 100.0 - tail])
        out[name] = [float(lo), float(hi)]
    return out


def bootstrap_ci(y_true: ArrayLike, y_pred: ArrayLike, statistic: Statistic = "macro_f1", n_boot: int = 1000,
                 seed: int = 0, *, num_classes: int | None = None, level: float = _LEVEL) -> list[float] | None:
    """The percentile-bootstrap interval ``[lo, hi]`` of one statistic; None when there are no samples.

    See :func:`bootstrap_cis` for the resampling and what ``statistic`` may be."""
    (ci,) = bootstrap_cis(y_true, y_pred, [statistic], n_boot, seed, num_classes=num_classes,
                          level=level).values()
    return ci


# --------------------------------------------------------------------------------------------- text
def format_interval(ci: Sequence[float] | None, *, percent: bool = False, digits: int | None = None) -> str:
    """``[0.6000, 0.9032]`` (fractions, 4 digits) or with ``percent`` ``[60.0, 90.3]`` (1 digit); ``[n/a]``
    for an undefined interval."""
    if ci is None:
        return "[n/a]"
    scale, places = (100.0, 1 if digits is None else digits) if percent else (1.0, 4 if digits is None else digits)
    lo, hi = (scale * float(x) for x in ci)
    return f"[{lo:.{places}f}, {hi:.{places}f}]"
