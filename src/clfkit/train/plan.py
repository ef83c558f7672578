"""How partial fine-tuning spends a time budget: where to cut the backbone, and how many views of each training
image to cache.  Pure functions over measured costs; no torch.

The trade-off: every block that trains lifts accuracy on data unlike ImageNet, but costs a forward and backward
pass per cached view per epoch, while the frozen prefix is paid once per view.  Views are where the variety
is: a few passes over many random views overfit far later than many passes over the center view and its
mirror (trashnet: training accuracy 99.9 % after 3 passes over 2 views, benchmarks/results/train_trashnet.md).
So the number of passes (``--epochs``) is fixed, and the rule is: the deepest cut (most blocks trained) at
which at least ``MIN_VIEWS`` views fit the budget (on a slower machine, 3, then 2), then as many views as fit,
up to ``MAX_VIEWS`` and the cache's memory limit.  Costs are per sample, measured on this machine just before planning
(:mod:`clfkit.train.partial`), so a slower machine gets a shallower cut or fewer views, not a blown budget.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping

__all__ = ["Costs", "Plan", "plan_partial", "views_that_fit", "MIN_VIEWS", "MAX_VIEWS", "CACHE_LIMIT_BYTES"]

MIN_VIEWS = 4  # the center view, its mirror and two random views
MAX_VIEWS = 12
CACHE_LIMIT_BYTES = 2 * 2**30  # training activations held in memory (float16)


@dataclass(frozen=True)
class Costs:
    """Seconds per sample, by cut (index of the first block that trains): ``prefix`` = one view through the
    frozen blocks (inference runtime), ``train`` = one training step of the rest, ``tail_eval`` = a forward of
    the rest in evaluation; ``decode`` = decoding and augmenting one view (the same at every cut)."""

    prefix: Mapping[int, float]
    train: Mapping[int, float]
    tail_eval: Mapping[int, float]
    decode: float = 0.0


@dataclass(frozen=True)
class Plan:
    cut: int
    views: int
    epochs: int
    predicted_s: dict[str, float]  # extract, warm start, train, evaluate
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def _predict(costs: Costs, cut: int, views: int, epochs: int, n_train: int, n_eval: int) -> dict[str, float]:
    return {"extract": (costs.prefix[cut] + costs.decode) * (n_train * views + n_eval),
            "warm_start": costs.tail_eval[cut] * (n_train * views + n_eval),
            "train": (costs.train[cut] * n_train * views + costs.tail_eval[cut] * n_eval) * epochs,
            "evaluate": costs.tail_eval[cut] * n_eval}


def views_that_fit(costs: Costs, cut: int, epochs: int, n_train: int, n_eval: int, budget_s: float) -> int:
    """Cached views per training image that fit ``budget_s`` (extraction, warm start, ``epochs`` passes)."""
    fixed = sum(_predict(costs, cut, 0, epochs, n_train, n_eval).values())
    per_view = sum(_predict(costs, cut, 1, epochs, n_train, 0).values()) - sum(
        _predict(costs, cut, 0, epochs, n_train, 0).values())
    return max(0, math.floor((budget_s - fixed) / max(per_view, 1e-12)))


def plan_partial(costs: Costs, *, n_train: int, n_eval: int, budget_s: float, epochs: int,
                 bytes_per_view: Mapping[int, int], cut: int | None = None) -> Plan | None:
    """The deepest cut at which ``MIN_VIEWS`` views x ``epochs`` passes fit ``budget_s``, with as many views as
    fit (≤ MAX_VIEWS, ≤ CACHE_LIMIT_BYTES); on a machine too slow for that, the deepest cut at which 3, then
    2 views (the center and its mirror) fit.  ``cut`` forces the cut.  None: not even 2 views fit anywhere."""
    cuts = [cut] if cut is not None else sorted(costs.train)
    for need in range(MIN_VIEWS, 1, -1):
        for c in cuts:
            fit = views_that_fit(costs, c, epochs, n_train, n_eval, budget_s)
            if fit < need and cut is None:
                continue
            memory = max(1, CACHE_LIMIT_BYTES // max(1, bytes_per_view[c] * n_train))
            views = max(2, min(fit, MAX_VIEWS, memory))
            pred = _predict(costs, c, views, epochs, n_train, n_eval)
            why = ("--cut" if cut is not None else f"the deepest cut where {need}+ views fit" +
                   ("" if need == MIN_VIEWS else f"; {MIN_VIEWS} fit nowhere"))
            limit = ("the cache's memory limit" if views == memory < min(fit, MAX_VIEWS) else
                     f"at most {MAX_VIEWS}" if views == MAX_VIEWS < fit else "what fits")
            reason = (f"blocks {c}+ train ({why}) on {views} cached views per image ({limit}) x {epochs} passes, "
                      f"predicted {sum(pred.values()):.0f} s of the {budget_s:.0f} s it may plan")
            return Plan(cut=c, views=views, epochs=epochs, predicted_s=pred, reason=reason)
    return None
