"""Probability calibration: one temperature fitted on held-out logits, and how well probabilities are calibrated.
Pure numpy, no torch import.

Temperature scaling (Guo et al., 2017, "On Calibration of Modern Neural Networks"): the class probabilities are
``softmax(logits / T)`` with one scalar ``T > 0`` chosen to minimise the negative log-likelihood (NLL) of
held-out labels (clf-train: the validation split's center view, as deployed).  Dividing every logit by the same
``T`` changes no prediction, only how sure each one claims to be: ``T > 1`` softens over-confident models, ``T < 1``
sharpens under-confident ones (label smoothing trains those).

The NLL is convex in ``1 / T``, so it has one minimum along ``log T``, found here by golden-section search within
:data:`clfkit.spec.TEMPERATURE_RANGE`.  When the minimum sits on the edge of that range there is no finite optimum
(every held-out image is right and the NLL keeps falling as ``T`` → 0, or the logits carry no signal), and
:func:`calibrate` keeps ``T = 1``.

Expected calibration error (ECE): the predictions are put in ``bins`` equal-width bins by their confidence (the
top probability): bin ``b`` holds confidences in ``(b / bins, (b + 1) / bins]``.  ECE = Σ_b (n_b / N) ·
|accuracy_b − mean confidence_b|, 0 for perfectly calibrated probabilities.  The per-bin numbers are the
reliability diagram (:func:`clfkit.report.figures.plot_reliability`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from clfkit.spec import TEMPERATURE_RANGE
from clfkit.vision.postprocess import softmax

__all__ = ["BINS", "Reliability", "TemperatureFit", "calibrate", "calibration_block", "expected_calibration_error",
           "fit_temperature", "nll", "reliability", "uncalibrated_probs"]

BINS = 15  # equal-width confidence bins of the ECE and the reliability diagram (Guo et al. use 15)
_GOLDEN = (math.sqrt(5) - 1) / 2
_TOLERANCE = 1e-6  # on log T: T to about six significant digits
_EDGE = 1e-3  # a fit within this (in log T) of the search range's edge found no finite optimum


def _logits_labels(logits: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if z.ndim != 2 or z.shape[0] != y.size:
        raise ValueError(f"logits must be (N, C) with N = {y.size} labels, got shape {z.shape}")
    if y.size and (y.min() < 0 or y.max() >= z.shape[1]):
        raise ValueError(f"labels must be class indices in [0, {z.shape[1]}), got {y.min()}..{y.max()}")
    if not np.all(np.isfinite(z)):
        raise ValueError("logits contain NaN or infinity")
    return z, y


def nll(logits: ArrayLike, labels: ArrayLike, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (natural log) of ``labels`` under ``softmax(logits / temperature)``."""
    z, y = _logits_labels(logits, labels)
    if not y.size:
        return float("nan")
    return _nll(z / temperature, y)


def _nll(scaled: np.ndarray, y: np.ndarray) -> float:
    top = scaled.max(axis=1, keepdims=True)
    log_sum = np.log(np.exp(scaled - top).sum(axis=1)) + top[:, 0]  # logsumexp per row, stable
    return float(np.mean(log_sum - scaled[np.arange(y.size), y]))


def fit_temperature(logits: ArrayLike, labels: ArrayLike,
                    bounds: tuple[float, float] = TEMPERATURE_RANGE) -> float:
    """The ``T`` within ``bounds`` that minimises :func:`nll` (golden-section search over ``log T``).

    Returns a bound when the NLL keeps falling towards it (no finite optimum inside); :func:`calibrate` treats
    that case."""
    z, y = _logits_labels(logits, labels)
    if not y.size:
        raise ValueError("fit_temperature needs at least one labelled sample")
    low, high = math.log(bounds[0]), math.log(bounds[1])

    def loss(u: float) -> float:
        return _nll(z * math.exp(-u), y)

    a, b = low, high
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = loss(c), loss(d)
    while b - a > _TOLERANCE:
        if fc <= fd:  # the minimum is in [a, d]
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = loss(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = loss(d)
    u = (a + b) / 2
    # The search never evaluates the bounds themselves; a monotone NLL ends next to one of them.
    return float(math.exp(min(max(u, low), high)))


@dataclass(frozen=True)
class TemperatureFit:
    """What :func:`calibrate` found on held-out logits."""

    temperature: float
    nll_before: float  # at T = 1
    nll_after: float  # at ``temperature``
    num_samples: int
    note: str = ""  # why T stayed 1.0, when it did

    def to_dict(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "nll_before": self.nll_before, "nll_after": self.nll_after,
                "num_samples": self.num_samples, "note": self.note}


def calibrate(logits: ArrayLike, labels: ArrayLike) -> TemperatureFit:
    """Fit the temperature on held-out ``logits`` (N, C) and ``labels`` (N,); ``T = 1`` where it cannot be fitted
    (no samples, or no finite optimum: see the module docstring), with the reason in ``note``."""
    z, y = _logits_labels(logits, labels)
    if not y.size:
        return TemperatureFit(1.0, float("nan"), float("nan"), 0, "no validation images: T = 1 (raw softmax)")
    before = _nll(z, y)
    t = fit_temperature(z, y)
    low, high = (math.log(v) for v in TEMPERATURE_RANGE)
    if math.log(t) - low < _EDGE or high - math.log(t) < _EDGE:
        why = ("the likelihood keeps rising as T → 0, as when every validation image is right"
               if math.log(t) - low < _EDGE else "the logits carry no signal on the validation split")
        return TemperatureFit(1.0, before, before, int(y.size), f"no finite optimum ({why}): T = 1 (raw softmax)")
    return TemperatureFit(t, before, _nll(z / t, y), int(y.size))


def uncalibrated_probs(probs: ArrayLike, temperature: float) -> np.ndarray:
    """The raw softmax ``softmax(z)`` recovered from calibrated probabilities ``p = softmax(z / T)``: ``log p`` is
    ``z / T`` minus a constant per row, so ``softmax(T · log p) = softmax(z)`` exactly (up to float32 rounding of
    ``p``; a class whose calibrated probability rounded to 0 stays 0)."""
    p = np.asarray(probs, dtype=np.float64)
    if temperature == 1.0:
        return p.astype(np.float32)
    with np.errstate(divide="ignore"):  # log(0) = -inf: exp(-inf) = 0 again, as it should be
        return softmax(temperature * np.log(p))


@dataclass(frozen=True)
class Reliability:
    """The reliability diagram's data: per confidence bin, how many predictions, their accuracy and mean
    confidence (NaN for an empty bin), and the ECE they add up to."""

    edges: np.ndarray  # (bins + 1,) from 0 to 1
    count: np.ndarray  # (bins,) int
    accuracy: np.ndarray  # (bins,)
    confidence: np.ndarray  # (bins,)
    ece: float

    def to_dict(self) -> dict[str, Any]:
        def listed(values: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 6) for v in values]

        return {"bins": len(self.count), "edges": [round(float(e), 6) for e in self.edges],
                "count": [int(c) for c in self.count], "accuracy": listed(self.accuracy),
                "confidence": listed(self.confidence), "ece": self.ece}


def reliability(probs: ArrayLike, labels: ArrayLike, bins: int = BINS) -> Reliability:
    """Bin ``probs`` (N, C) by confidence into ``bins`` equal-width bins (see the module docstring)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if p.ndim != 2 or p.shape[0] != y.size:
        raise ValueError(f"probs must be (N, C) with N = {y.size} labels, got shape {p.shape}")
    if not y.size:
        raise ValueError("no samples: labels is empty")
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # bin b holds (b / bins, (b + 1) / bins]; a confidence of exactly 0 (impossible for a softmax) goes to bin 0
    which = np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(which, weights=correct, minlength=bins) / count
        conf = np.bincount(which, weights=confidence, minlength=bins) / count
    used = count > 0
    ece = float(np.sum(count[used] / y.size * np.abs(acc[used] - conf[used])))
    return Reliability(np.linspace(0.0, 1.0, bins + 1), count, acc, conf, ece)


def expected_calibration_error(probs: ArrayLike, labels: ArrayLike, bins: int = BINS) -> float:
    """ECE of ``probs`` (N, C) against ``labels`` with ``bins`` equal-width confidence bins (0: calibrated)."""
    return reliability(probs, labels, bins).ece


def calibration_block(probs: ArrayLike, probs_uncalibrated: ArrayLike, labels: ArrayLike,
                      temperature: float) -> dict[str, Any]:
    """The calibration keys of a report's metrics.json: ``temperature``, ``ece`` (of ``probs``, what the model
    outputs with its temperature), ``ece_uncalibrated`` (of the raw softmax) and both reliability diagrams."""
    after, before = reliability(probs, labels), reliability(probs_uncalibrated, labels)
    return {"temperature": float(temperature), "ece": after.ece, "ece_uncalibrated": before.ece,
            "ece_bins": BINS, "reliability": {"calibrated": after.to_dict(), "uncalibrated": before.to_dict()}}
