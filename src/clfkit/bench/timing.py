"""The timing harness: warm up, then time a callable until enough runs *and* enough seconds have passed.

Pure Python (no torch, no onnxruntime): a backend hands in ``fn`` (one model call on a prepared batch) and, on
a GPU, ``sync`` (``torch.cuda.synchronize``), so asynchronous kernels are inside the measured interval.
Each run is timed on its own with :func:`time.perf_counter`; the report uses percentiles of those runs,
never a single total, so one hiccup from another process on a busy machine moves p99, not p50.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import numpy as np

__all__ = ["Timing", "time_fn", "summarize", "images_per_s", "WARMUP", "MIN_RUNS", "MIN_SECONDS"]

WARMUP = 3  # untimed calls first: thread pools, allocator arenas, oneDNN/MLAS kernel selection, cuDNN autotune
MIN_RUNS = 30
MIN_SECONDS = 2.0


@dataclass(frozen=True)
class Timing:
    """Latency of one call (milliseconds) over ``runs`` timed calls."""

    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    runs: int

    def images_per_s(self, batch_size: int) -> float:
        """Sustained throughput: images per call / mean seconds per call (the mean, not p50, so slow calls
        count as they would in a long run)."""
        return images_per_s(batch_size, self.mean_ms / 1000.0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def images_per_s(images: int, seconds: float) -> float:
    """``images / seconds``; 0.0 for a zero or negative interval (nothing measurable)."""
    return images / seconds if seconds > 0 else 0.0


def summarize(seconds: Sequence[float]) -> Timing:
    """Percentiles (numpy's linear interpolation) of per-call durations given in seconds."""
    if len(seconds) == 0:
        raise ValueError("no timed runs to summarize")
    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    if not np.all(np.isfinite(ms)) or np.any(ms < 0):
        raise ValueError("durations must be finite and non-negative")
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return Timing(p50_ms=float(p50), p90_ms=float(p90), p99_ms=float(p99), mean_ms=float(ms.mean()),
                  min_ms=float(ms.min()), max_ms=float(ms.max()), runs=int(ms.size))


def time_fn(fn: Callable[[], Any], warmup: int = WARMUP, min_runs: int = MIN_RUNS,
            min_seconds: float = MIN_SECONDS, sync: Callable[[], None] | None = None,
            max_runs: int | None = None, clock: Callable[[], float] = time.perf_counter) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then time single calls until at least ``min_runs`` calls *and*
    ``min_seconds`` of timed calls have been made (or ``max_runs`` calls, when given).

    ``sync`` is called after every call (and before the clock starts) so that work queued on a GPU is
    finished inside the interval it belongs to.  ``clock`` is injectable for tests.
    """
    if min_runs < 1:
        raise ValueError(f"min_runs must be at least 1, got {min_runs}")
    if warmup < 0 or min_seconds < 0:
        raise ValueError("warmup and min_seconds must be >= 0")
    if max_runs is not None and max_runs < min_runs:
        raise ValueError(f"max_runs ({max_runs}) must be >= min_runs ({min_runs})")
    for _ in range(warmup):
        fn()
    if sync is not None:
        sync()
    durations: list[float] = []
    total = 0.0
    while len(durations) < min_runs or total < min_seconds:
        if max_runs is not None and len(durations) >= max_runs:
            break
        start = clock()
        fn()
        if sync is not None:
            sync()
        elapsed = clock() - start
        durations.append(elapsed)
        total += elapsed
    return summarize(durations)
