"""Benchmarks: the PyTorch baseline and the strongest peers vs the onnxruntime engine on the same images and threads
(``clf-bench``).

>>> from clfkit.bench import BenchConfig, run_bench, write_report
>>> results = run_bench(BenchConfig("runs/x/model.pt", "model.onnx", "data", int8="model.int8.onnx"))
>>> write_report(results, "bench-out")        # report.md, results.json/.csv, latency.png, throughput.png

:mod:`~clfkit.bench.timing` (the pure timing harness), :mod:`~clfkit.bench.baseline` (the PyTorch baseline),
:mod:`~clfkit.bench.backends` (one interface over all), :mod:`~clfkit.bench.peers` (the peers that are not
clfkit: OpenVINO used directly, and which peers run) and :mod:`~clfkit.bench.compiled` (torch.compile, "PyTorch
best"), :mod:`~clfkit.bench.lineup` (loading the compared backends), :mod:`~clfkit.bench.memory` (peak RSS in a
child process), :mod:`~clfkit.bench.summary` (ratios and targets), :mod:`~clfkit.bench.run` (``run_bench``),
:mod:`~clfkit.bench.report` (writers); ``clf-bench`` is :mod:`clfkit.cli.bench`.  Importing this package
is cheap; torch loads when a benchmark runs.
"""
from __future__ import annotations

from clfkit._lazy import lazy_attributes

__all__ = ["BenchConfig", "run_bench", "write_report", "time_fn", "Timing"]
_LAZY = {"BenchConfig": "clfkit.bench.run", "run_bench": "clfkit.bench.run", "write_report": "clfkit.bench.report",
         "time_fn": "clfkit.bench.timing", "Timing": "clfkit.bench.timing"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
