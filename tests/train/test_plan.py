"""The time-budget planner of partial fine-tuning: pure arithmetic over measured per-sample costs."""
from __future__ import annotations

import pytest

from clfkit.train.plan import CACHE_LIMIT_BYTES, MAX_VIEWS, MIN_VIEWS, Costs, plan_partial, views_that_fit

# Three candidate cuts: 10 trains the most blocks (slowest), 12 the fewest.  Seconds per sample.
COSTS = Costs(prefix={10: 0.010, 11: 0.012, 12: 0.014}, train={10: 0.040, 11: 0.020, 12: 0.005},
              tail_eval={10: 0.008, 11: 0.004, 12: 0.001}, decode=0.002)
SMALL = {10: 1000, 11: 800, 12: 600}  # bytes of one cached view


def _total(plan) -> float:
    return sum(plan.predicted_s.values())


def test_a_generous_budget_trains_the_most_blocks_with_views_up_to_the_cap() -> None:
    plan = plan_partial(COSTS, n_train=100, n_eval=50, budget_s=10_000, epochs=3, bytes_per_view=SMALL)
    assert (plan.cut, plan.views, plan.epochs) == (10, MAX_VIEWS, 3)
    assert _total(plan) <= 10_000 and "at most" in plan.reason


def test_a_tight_budget_cuts_shallower_instead_of_overrunning() -> None:
    deep_min = views_that_fit(COSTS, 10, 3, 1000, 200, 1e9)  # sanity: the helper counts views
    assert deep_min > MAX_VIEWS
    budget = 400.0  # cut 10 fits < MIN_VIEWS views of 1000 images; cut 11 fits more
    assert views_that_fit(COSTS, 10, 3, 1000, 200, budget) < MIN_VIEWS
    plan = plan_partial(COSTS, n_train=1000, n_eval=200, budget_s=budget, epochs=3, bytes_per_view=SMALL)
    assert plan.cut == 11 and MIN_VIEWS <= plan.views <= MAX_VIEWS
    assert _total(plan) <= budget


def test_a_slower_machine_never_gets_a_deeper_cut_or_more_views() -> None:
    slow = Costs(prefix={c: 2 * v for c, v in COSTS.prefix.items()}, train={c: 2 * v for c, v in COSTS.train.items()},
                 tail_eval={c: 2 * v for c, v in COSTS.tail_eval.items()}, decode=2 * COSTS.decode)
    fast = plan_partial(COSTS, n_train=1000, n_eval=200, budget_s=400, epochs=3, bytes_per_view=SMALL)
    slower = plan_partial(slow, n_train=1000, n_eval=200, budget_s=400, epochs=3, bytes_per_view=SMALL)
    assert (slower.cut, -slower.views) >= (fast.cut, -fast.views)
    assert _total(slower) <= 400


def test_views_are_capped_by_the_cache_memory_limit() -> None:
    big = {c: CACHE_LIMIT_BYTES // 500 for c in SMALL}  # 100 images x 5 views fill the limit
    plan = plan_partial(COSTS, n_train=100, n_eval=50, budget_s=10_000, epochs=3, bytes_per_view=big)
    assert plan.views == 5 and "memory" in plan.reason


def test_forced_cut_and_nothing_fits() -> None:
    forced = plan_partial(COSTS, n_train=100, n_eval=50, budget_s=10_000, epochs=2, bytes_per_view=SMALL, cut=12)
    assert forced.cut == 12 and "--cut" in forced.reason and forced.epochs == 2
    assert plan_partial(COSTS, n_train=10_000, n_eval=2000, budget_s=5, epochs=3, bytes_per_view=SMALL) is None


@pytest.mark.parametrize("epochs", [1, 3, 6])
def test_prediction_grows_with_epochs_and_views(epochs: int) -> None:
    a = views_that_fit(COSTS, 11, epochs, 500, 100, 300)
    b = views_that_fit(COSTS, 11, epochs + 1, 500, 100, 300)
    assert b <= a


@pytest.mark.parametrize(("budget", "views"), [(120.0, 3), (80.0, 2)])
def test_a_machine_too_slow_for_four_views_gets_fewer_not_nothing(budget: float, views: int) -> None:
    assert all(views_that_fit(COSTS, c, 3, 1000, 200, budget) < MIN_VIEWS for c in COSTS.train)
    plan = plan_partial(COSTS, n_train=1000, n_eval=200, budget_s=budget, epochs=3, bytes_per_view=SMALL)
    assert (plan.cut, plan.views) == (12, views) and f"{MIN_VIEWS} fit nowhere" in plan.reason
    assert _total(plan) <= budget
