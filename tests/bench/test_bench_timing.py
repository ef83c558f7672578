"""The timing harness: how many calls it makes, what it times, and the statistics it reports."""
from __future__ import annotations

import numpy as np
import pytest

from clfkit.bench.timing import Timing, images_per_s, summarize, time_fn


class FakeClock:
    """Each timed call takes ``step`` seconds: the clock advances only inside ``fn``."""

    def __init__(self, step: float) -> None:
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.step


def test_warmup_calls_are_not_timed_and_min_runs_is_respected() -> None:
    clock = FakeClock(0.001)
    calls = []

    def fn() -> None:
        calls.append(1)
        clock.tick()

    timing = time_fn(fn, warmup=4, min_runs=30, min_seconds=0.0, clock=clock)
    assert timing.runs == 30
    assert len(calls) == 34  # 4 warm-up calls + 30 timed
    assert timing.p50_ms == pytest.approx(1.0)


def test_keeps_timing_until_min_seconds_when_calls_are_fast() -> None:
    clock = FakeClock(0.01)  # 10 ms per call: 2 s needs 200 calls, more than min_runs
    timing = time_fn(clock.tick, warmup=0, min_runs=30, min_seconds=2.0, clock=clock)
    assert timing.runs == 200
    assert timing.mean_ms == pytest.approx(10.0)


def test_max_runs_caps_a_slow_clock() -> None:
    clock = FakeClock(0.0)  # zero-duration calls would never reach min_seconds
    timing = time_fn(clock.tick, warmup=0, min_runs=5, min_seconds=1.0, max_runs=12, clock=clock)
    assert timing.runs == 12


def test_sync_is_called_after_every_timed_call() -> None:
    clock = FakeClock(0.002)
    events: list[str] = []

    def fn() -> None:
        events.append("run")
        clock.tick()

    time_fn(fn, warmup=2, min_runs=3, min_seconds=0.0, sync=lambda: events.append("sync"), clock=clock)
    # one sync after the warm-up, then run/sync pairs: the queued work is inside each interval
    assert events == ["run", "run", "sync", "run", "sync", "run", "sync", "run", "sync"]


def test_percentiles_and_throughput_follow_numpy() -> None:
    seconds = [0.010, 0.020, 0.030, 0.040, 0.100]
    timing = summarize(seconds)
    ms = np.array(seconds) * 1000
    assert timing.p50_ms == pytest.approx(np.percentile(ms, 50))
    assert timing.p90_ms == pytest.approx(np.percentile(ms, 90))
    assert timing.p99_ms == pytest.approx(np.percentile(ms, 99))
    assert (timing.min_ms, timing.max_ms, timing.runs) == (pytest.approx(10.0), pytest.approx(100.0), 5)
    assert timing.images_per_s(8) == pytest.approx(8 / 0.040)  # batch / mean seconds
    assert images_per_s(100, 0.0) == 0.0
    assert set(timing.to_dict()) == {f.name for f in Timing.__dataclass_fields__.values()}


@pytest.mark.parametrize("kwargs", [{"min_runs": 0}, {"warmup": -1}, {"min_runs": 5, "max_runs": 2}])
def test_bad_arguments_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        time_fn(lambda: None, **kwargs)


def test_summarize_refuses_empty_and_negative() -> None:
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([0.1, -0.1])
