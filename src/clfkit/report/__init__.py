"""Evaluation and reports shared by training, inference and benchmarks.

:mod:`clfkit.report.metrics` is pure numpy (confusion matrix, per-class precision/recall/F1, top-k, log loss),
:mod:`clfkit.report.figures` draws PNGs with matplotlib, :mod:`clfkit.report.io` writes JSON/CSV atomically.
None of them imports torch; this ``__init__`` imports nothing so ``import clfkit.report`` stays cheap.
"""
