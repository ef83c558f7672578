"""Bounded, ordered parallel map for decode-and-preprocess work.  No torch import.

``ThreadPoolExecutor.map`` submits every item at once, which on a folder of a million photos holds a million
futures (and their decoded results) in memory.  ``ordered_map`` keeps at most ``ahead`` items in flight and
yields results in input order, so a consumer (the model) works on batch k while threads decode batch k+1.
Pillow releases the GIL while decoding and resizing, so threads give real parallelism here.
"""
from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterable, Iterator, TypeVar

__all__ = ["ordered_map", "default_workers", "batched"]

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Decode threads: one per core plus one, so a core is never idle while another thread waits on I/O."""
    return max(1, min(16, (os.cpu_count() or 1) + 1))


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int | None = None,
                ahead: int | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` for each item, in order, computing up to ``ahead`` items concurrently.

    ``fn`` should catch its own expected errors and return them as values (one bad image must not stop the
    stream); an unexpected exception is re-raised in the consumer.
    """
    workers = default_workers() if workers is None else workers
    if workers <= 1:  # 0 or 1: in the calling thread
        yield from map(fn, items)
        return
    ahead = max(ahead or 4 * workers, 1)
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clfkit-decode") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items (the last may be shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
