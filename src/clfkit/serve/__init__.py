"""``clf-serve``: an exported ONNX classifier behind HTTP, with dynamic micro-batching and a small web page.

>>> from clfkit.runtime import Engine
>>> from clfkit.serve import ServeConfig, create_app
>>> app = create_app(Engine.from_onnx("model.onnx"), ServeConfig(max_batch=32, max_wait_ms=5))  # an ASGI app

:mod:`~clfkit.serve.batcher` (pure asyncio micro-batcher), :mod:`~clfkit.serve.predictor` (bytes → views →
batched engine call → the same probabilities as clf-infer), :mod:`~clfkit.serve.uploads` (request bodies with the
size limit enforced while streaming), :mod:`~clfkit.serve.app` (routes, errors, web page, local API docs),
:mod:`~clfkit.serve.server` (the server process behind ``clf-serve``), :mod:`~clfkit.serve.loadgen` (load test client and a server
subprocess, for tests and benchmarks).  Needs the ``serve`` extra (FastAPI, uvicorn); never imports torch.
"""
from __future__ import annotations

from clfkit._lazy import lazy_attributes
from clfkit.serve.batcher import BatchStats, MicroBatcher
from clfkit.serve.config import ServeConfig

__all__ = ["BatchStats", "MicroBatcher", "ServeConfig", "create_app"]
# FastAPI is imported on first use, so `clf-serve --help` and a missing extra get a clear message.
_LAZY = {"create_app": "clfkit.serve.app"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
