"""Model output → what a user reads: softmax (with the spec's temperature), the TTA average, top-k.  Pure
numpy, no torch import.

One definition each, used by clf-infer, clf-serve, the benchmarks, export verification and the reports, so
the numbers agree everywhere.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["softmax", "mean_of_views", "topk_of"]


def softmax(logits: ArrayLike, axis: int = -1, temperature: float = 1.0) -> np.ndarray:
    """Numerically stable ``softmax(logits / temperature)``: computed in float64 after subtracting the max,
    returned as float32.  ``temperature`` is the spec's calibration (1.0: the raw softmax)."""
    x = np.asarray(logits, dtype=np.float64)
    if temperature != 1.0:
        x = x / temperature
    x = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(x)
    return (e / np.sum(e, axis=axis, keepdims=True)).astype(np.float32)


def mean_of_views(probs: np.ndarray) -> np.ndarray:
    """The TTA average over the views axis (second to last: (V, C) → (C,), (B, V, C) → (B, C)); the sum is
    taken in float64 so the result does not depend on the order of the views, and returned as float32."""
    return probs.mean(axis=-2, dtype=np.float64).astype(np.float32)


def topk_of(probs: np.ndarray, class_names: tuple[str, ...], k: int) -> tuple[tuple[str, float], ...]:
    """The ``k`` most likely classes as (name, probability); ties go to the lower class index, as argmax does."""
    order = np.argsort(-probs, kind="stable")[:k]
    return tuple((class_names[i], float(probs[i])) for i in order)
