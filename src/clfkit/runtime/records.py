"""The one prediction record: what clf-infer writes (CSV, JSON Lines, JSON) and clf-serve answers.  No torch.

A :class:`Prediction` is one input's result; :func:`make_prediction` builds it from the probabilities of the
input's views (the TTA average; view 0 is the eval view alone), and :func:`prediction_record` turns it into the
JSON object every output uses::

    {"path", "pred", "prob", "index", "topk": [{"label", "prob"}, ...], "error", "provider"}

clf-serve sends the same object without ``path`` (a single upload has none) or with the upload's name as
``file`` in a batch, plus the TTA count.  Probabilities are rounded to :data:`DIGITS` decimals everywhere.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clfkit.vision.postprocess import mean_of_views, topk_of

__all__ = ["DIGITS", "Prediction", "make_prediction", "prediction_record"]

DIGITS = 6  # probabilities are rounded to this many decimals in every output (clf-serve too)


@dataclass(frozen=True)
class Prediction:
    """One input's result.  ``error`` is None for a prediction, else the reason and no label is set."""

    path: str
    label: str | None = None
    index: int | None = None
    prob: float | None = None
    topk: tuple[tuple[str, float], ...] = ()  # (class name, probability), most likely first
    error: str | None = None
    # With keep_probs=True: all class probabilities (TTA average) and those of view 0 alone, float32 (C,).
    probs: np.ndarray | None = field(default=None, compare=False, repr=False)
    probs_no_tta: np.ndarray | None = field(default=None, compare=False, repr=False)
    # What computed this row, when it is not the one runtime of the run (a cluster's actors each say theirs).
    provider: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_prediction(path: str, view_probs: np.ndarray, class_names: tuple[str, ...], topk: int,
                    keep_probs: bool = False) -> Prediction:
    """The prediction for one input from its (V, C) view probabilities (V = 1 without TTA)."""
    mean = mean_of_views(view_probs)
    index = int(np.argmax(mean))
    return Prediction(path=path, label=class_names[index], index=index, prob=float(mean[index]),
                      topk=topk_of(mean, class_names, topk),
                      probs=mean if keep_probs else None,
                      probs_no_tta=view_probs[0].copy() if keep_probs else None)


def _round(p: float | None) -> float | None:
    return None if p is None else round(p, DIGITS)


def prediction_record(pred: Prediction, provider: str) -> dict[str, Any]:
    """A prediction as a JSON-ready dict (see the module docstring); ``provider`` unless the row names its own."""
    return {
        "path": pred.path,
        "pred": pred.label,
        "prob": _round(pred.prob),
        "index": pred.index,
        "topk": [{"label": name, "prob": _round(p)} for name, p in pred.topk],
        "error": pred.error,
        "provider": pred.provider or provider,
    }
