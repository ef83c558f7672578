"""The micro-batcher on its own: pure asyncio, a plain function as the "model", no HTTP."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from clfkit.serve.batcher import BatcherClosed, MicroBatcher


class RecordingModel:
    """Doubles each item and records the batches it was called with; can be held to simulate a slow model."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()
        self.release.set()
        self.started = threading.Event()
        self.fail_on: set[int] = set()

    def __call__(self, items: list[int]) -> list[int]:
        self.started.set()
        self.release.wait(10)
        self.batches.append(list(items))
        if self.fail_on & set(items):
            raise RuntimeError(f"model failed on {sorted(self.fail_on & set(items))}")
        return [2 * x for x in items]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


async def _wait_started(model: RecordingModel) -> None:
    while not model.started.is_set():
        await asyncio.sleep(0.005)


def test_concurrent_items_share_batches_of_at_most_max_batch_and_each_caller_gets_its_own_result():
    model = RecordingModel()

    async def main() -> list[int]:
        batcher = MicroBatcher(model, max_batch=4, max_wait_s=0.2)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(10)))
        assert batcher.stats.as_dict()["batch_sizes"] == {"2": 1, "4": 2}
        await batcher.close()
        return results

    assert run(main()) == [2 * i for i in range(10)]
    assert model.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_lone_item_runs_after_max_wait_without_company():
    model = RecordingModel()

    async def main() -> int:
        batcher = MicroBatcher(model, max_batch=32, max_wait_s=0.02)
        result = await batcher.submit(21)
        await batcher.close()
        return result

    assert run(main()) == 42
    assert model.batches == [[21]]


def test_items_arriving_while_a_batch_runs_form_the_next_batch():
    model = RecordingModel()
    model.release.clear()  # the first batch "runs" until released
    pool = ThreadPoolExecutor(1)

    async def main() -> list[int]:
        batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.0, executor=pool)
        first = asyncio.ensure_future(batcher.submit(0))
        await _wait_started(model)
        rest = [asyncio.ensure_future(batcher.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        assert batcher.queued == 5 and batcher.running == 1
        model.release.set()
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results

    assert run(main()) == [0, 2, 4, 6, 8, 10]
    assert model.batches == [[0], [1, 2, 3, 4, 5]]  # with max_wait 0, only the backlog batches up
    pool.shutdown()


def test_a_failing_batch_fails_its_callers_only_and_the_batcher_goes_on():
    model = RecordingModel()
    model.fail_on = {3}

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=2, max_wait_s=0.5)
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(4)), return_exceptions=True)
        assert outcomes[:2] == [0, 2]
        assert all(isinstance(o, RuntimeError) and "failed on [3]" in str(o) for o in outcomes[2:])
        assert await batcher.submit(5) == 10
        await batcher.close()

    run(main())


def test_a_caller_that_went_away_drops_out_of_the_next_batch():
    model = RecordingModel()
    model.release.clear()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=8, max_wait_s=0.0)
        first = asyncio.ensure_future(batcher.submit(0))
        await _wait_started(model)
        gone = asyncio.ensure_future(batcher.submit(1))
        stays = asyncio.ensure_future(batcher.submit(2))
        await asyncio.sleep(0.01)
        gone.cancel()  # e.g. the HTTP client disconnected
        model.release.set()
        assert await first == 0 and await stays == 4
        await batcher.close()

    run(main())
    assert model.batches == [[0], [2]]


def test_close_fails_waiting_callers_and_refuses_new_ones():
    model = RecordingModel()
    model.release.clear()

    async def main() -> None:
        batcher = MicroBatcher(model, max_batch=1, max_wait_s=0.0)
        running = asyncio.ensure_future(batcher.submit(0))
        await _wait_started(model)
        waiting = asyncio.ensure_future(batcher.submit(1))
        await asyncio.sleep(0.01)
        await batcher.close()
        model.release.set()
        for task in (running, waiting):
            with pytest.raises(BatcherClosed):
                await task
        with pytest.raises(BatcherClosed):
            await batcher.submit(2)

    run(main())


@pytest.mark.parametrize("kwargs", [{"max_batch": 0, "max_wait_s": 0.0}, {"max_batch": 1, "max_wait_s": -1.0}])
def test_bad_limits_are_refused(kwargs):
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, **kwargs)
