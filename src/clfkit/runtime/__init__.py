"""Running an exported model: no torch needed.

>>> from clfkit.runtime import Engine
>>> engine = Engine.from_onnx("model.onnx", device="auto")      # spec and class names come from the file
>>> for p in engine.predict(["a.jpg", "b.jpg"], tta=4):          # in input order
...     print(p.path, p.label, p.prob, p.topk, p.error)

:mod:`~clfkit.runtime.backend` (what a runtime provides) with :mod:`~clfkit.runtime.backend_ort` (onnxruntime)
and the :mod:`~clfkit.runtime.registry` of runtimes; :mod:`~clfkit.runtime.engine` (spec, input format,
arrays → logits); :mod:`~clfkit.runtime.pipeline` (paths → views → batches → predictions);
:mod:`~clfkit.runtime.records` (the one prediction record); :mod:`~clfkit.runtime.writers` (one writer per
output format); :mod:`~clfkit.runtime.sources` (PATH arguments, labelled folders);
:mod:`~clfkit.runtime.evaluate` (metrics and report); :mod:`~clfkit.runtime.infer` (``run_infer``, behind
``clf-infer``).
"""
from __future__ import annotations

from clfkit.runtime.engine import Engine
from clfkit.runtime.infer import InferResult, run_infer
from clfkit.runtime.pipeline import predict
from clfkit.runtime.records import Prediction

__all__ = ["Engine", "InferResult", "Prediction", "predict", "run_infer"]
