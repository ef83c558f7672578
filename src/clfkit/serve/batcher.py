"""Dynamic micro-batching: requests that arrive close together share one model call.  Pure asyncio, no HTTP.

``await batcher.submit(item)`` parks the caller; a collector task takes the first waiting item, then keeps
adding items until ``max_batch`` are gathered or ``max_wait_s`` has passed since that first item *arrived*,
and hands the list to ``run_batch`` in ``executor`` (a worker thread, so the event loop never blocks on the
model).  Batches run one at a time: while one runs, new requests pile up and form the next batch, so batches
grow by themselves under load and a lone request waits at most ``max_wait_s`` for company.

``run_batch(items) -> results`` returns one result per item, in order; if it raises, every caller in that batch
gets the exception.  A caller that goes away (its task cancelled: the client disconnected) drops out of the
batch it has not joined yet.
"""
from __future__ import annotations

import asyncio
import collections
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Sequence, TypeVar

__all__ = ["BatcherClosed", "BatchStats", "MicroBatcher"]

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """The batcher was shut down before (or while) the item was run."""


@dataclass
class BatchStats:
    """What the batcher ran: the evidence that concurrent requests really share model calls."""

    batches: int = 0
    items: int = 0
    largest: int = 0
    sizes: collections.Counter = field(default_factory=collections.Counter)  # batch size → how many batches

    def record(self, size: int) -> None:
        self.batches += 1
        self.items += size
        self.largest = max(self.largest, size)
        self.sizes[size] += 1

    @property
    def mean_size(self) -> float:
        return self.items / self.batches if self.batches else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "images": self.items, "mean_batch_size": round(self.mean_size, 3),
                "largest_batch": self.largest,
                "batch_sizes": {str(size): n for size, n in sorted(self.sizes.items())}}


@dataclass
class _Pending(Generic[T]):
    item: T
    future: asyncio.Future
    arrived: float  # loop.time() at submit


class MicroBatcher(Generic[T, R]):
    """Gather concurrently submitted items into batches of at most ``max_batch`` (see the module docstring)."""

    def __init__(self, run_batch: Callable[[list[T]], Sequence[R]], *, max_batch: int, max_wait_s: float,
                 executor: Executor | None = None) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be 0 or more, got {max_wait_s}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.executor = executor
        self.stats = BatchStats()
        self.running = 0  # items in the batch the model is working on now
        self._pending: collections.deque[_Pending[T]] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Items waiting for a batch (not counting the one running)."""
        return len(self._pending)

    def start(self) -> None:
        """Start the collector on the running event loop (idempotent)."""
        if self._closed:
            raise BatcherClosed("the batcher was closed")
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._collect(), name="clfkit-micro-batcher")

    async def submit(self, item: T) -> R:
        """Run ``item`` in the next batch and return its result (or raise what ``run_batch`` raised)."""
        if self._closed:
            raise BatcherClosed("the server is shutting down")
        self.start()
        loop = asyncio.get_running_loop()
        pending = _Pending(item, loop.create_future(), loop.time())
        self._pending.append(pending)
        assert self._wakeup is not None
        self._wakeup.set()
        return await pending.future

    async def close(self) -> None:
        """Stop collecting; callers still waiting get :class:`BatcherClosed`."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        while self._pending:
            future = self._pending.popleft().future
            if not future.done():
                future.set_exception(BatcherClosed("the server is shutting down"))

    # --- the collector ---------------------------------------------------------------------------------------
    async def _wait_for_item(self, deadline: float | None) -> bool:
        """Wait until an item is pending (True) or ``deadline`` (loop time) passes (False)."""
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while not self._pending:
            self._wakeup.clear()
            if deadline is None:
                await self._wakeup.wait()
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except asyncio.TimeoutError:
                return bool(self._pending)
        return True

    async def _collect(self) -> None:
        while True:
            await self._wait_for_item(None)
            batch: list[_Pending[T]] = []
            deadline: float | None = None
            while len(batch) < self.max_batch:
                if not self._pending and not await self._wait_for_item(deadline):
                    break
                pending = self._pending.popleft()
                if pending.future.done():  # its caller went away while it waited
                    continue
                batch.append(pending)
                if deadline is None:  # the clock starts when the first item arrived, not when it was taken
                    deadline = pending.arrived + self.max_wait_s
            if batch:
                await self._run(batch)

    async def _run(self, batch: list[_Pending[T]]) -> None:
        self.stats.record(len(batch))
        self.running = len(batch)
        try:
            results = await asyncio.get_running_loop().run_in_executor(
                self.executor, self.run_batch, [p.item for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:  # close() while the model runs: nobody will set these results
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(BatcherClosed("the server is shutting down"))
            raise
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this batch
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
        else:
            for p, result in zip(batch, results):
                if not p.future.done():
                    p.future.set_result(result)
        finally:
            self.running = 0
