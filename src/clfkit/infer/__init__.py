"""Inference with an exported ONNX model: no torch needed.

>>> from clfkit.infer import Engine
>>> engine = Engine.from_onnx("model.onnx", device="auto")      # spec and class names come from the file
>>> for p in engine.predict(["a.jpg", "b.jpg"], tta=4):          # in input order
...     print(p.path, p.label, p.prob, p.topk, p.error)

:mod:`~clfkit.infer.engine` (session, providers, arrays → logits), :mod:`~clfkit.infer.pipeline` (paths →
views → batches → :class:`Prediction`), :mod:`~clfkit.infer.sources` (PATH arguments, labelled folders),
:mod:`~clfkit.infer.outputs` (csv/jsonl/json writers), :mod:`~clfkit.infer.evaluate` (metrics and report),
:mod:`~clfkit.infer.command` (``clf-infer``).
"""
from __future__ import annotations

from clfkit.infer.engine import DEVICES, Engine
from clfkit.infer.pipeline import Prediction, predict

__all__ = ["DEVICES", "Engine", "Prediction", "predict"]
