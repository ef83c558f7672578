"""The one prediction record: what clf-infer writes (CSV, JSON Lines, JSON) and clf-serve answers.  No torch.

A :class:`Prediction` is one input's result; :func:`make_prediction` builds it from the probabilities of the
input's views (the TTA average; view 0 is the eval view alone), and :func:`prediction_record` turns it into the
JSON object every output uses::

    {"path", "pred", "prob", "index", "topk": [{"label", "prob"}, ...], "error", "provider"}

clf-serve sends the same object without ``path`` (a single upload has none) or with the upload's name as
``file`` in a batch, plus the TTA count.  Probabilities are rounded to :data:`DIGITS` decimals everywhere.

With ``reject_below`` P (``--reject-below``), a prediction whose top probability is below P says
``pred = "unknown"`` (:data:`UNKNOWN`; the rule is :func:`clfkit.report.coverage.is_kept`), and ``prob``,
``index`` and ``topk`` still describe the top class: its probability, its position in the class list, and it
first in ``topk`` (``top1`` in CSV).  The columns stay the same; ``pred`` is the decision, the rest the evidence.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Any

import numpy as np

from clfkit.errors import ConfigError
from clfkit.report.coverage import is_kept
from clfkit.vision.postprocess import mean_of_views, topk_of

__all__ = ["DIGITS", "UNKNOWN", "Prediction", "check_reject_below", "make_prediction", "prediction_record"]

DIGITS = 6  # probabilities are rounded to this many decimals in every output (clf-serve too)
UNKNOWN = "unknown"  # ``pred`` of a prediction below --reject-below


def check_reject_below(value: Any, class_names: tuple[str, ...] = ()) -> float | None:
    """``--reject-below`` as a float in (0, 1), or None when not given; ConfigError naming the flag otherwise.

    A model with a class named "unknown" is refused: its rows could not tell that class from a rejection."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ConfigError(f"--reject-below must be a probability between 0 and 1 (e.g. 0.8), got {value!r}")
    if not 0 < value < 1:  # NaN fails this too
        raise ConfigError(f"--reject-below must be between 0 and 1, both excluded (e.g. 0.8), got {value:g}")
    if UNKNOWN in class_names:
        raise ConfigError(f"--reject-below: the model has a class named {UNKNOWN!r}, the word rejected predictions "
                          f"get; its rows could not be told apart.  Rename that class and train again, or leave "
                          f"out --reject-below")
    return float(value)


@dataclass(frozen=True)
class Prediction:
    """One input's result.  ``error`` is None for a prediction, else the reason and no label is set.

    ``rejected``: the top probability was below ``reject_below``, so ``label`` is :data:`UNKNOWN`; ``index``,
    ``prob`` and ``topk`` are the top class's all the same."""

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
    rejected: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def make_prediction(path: str, view_probs: np.ndarray, class_names: tuple[str, ...], topk: int,
                    keep_probs: bool = False, reject_below: float | None = None) -> Prediction:
    """The prediction for one input from its (V, C) view probabilities (V = 1 without TTA); "unknown" when
    the top probability is below ``reject_below`` (checked by :func:`check_reject_below` beforehand)."""
    mean = mean_of_views(view_probs)
    index = int(np.argmax(mean))
    prob = float(mean[index])
    rejected = not is_kept(prob, reject_below)
    return Prediction(path=path, label=UNKNOWN if rejected else class_names[index], index=index, prob=prob,
                      rejected=rejected,
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
