"""``clf-serve``: an exported ONNX classifier behind HTTP, with dynamic micro-batching and a small web page.

>>> from clfkit.infer import Engine
>>> from clfkit.serve import ServeConfig, create_app
>>> app = create_app(Engine.from_onnx("model.onnx"), ServeConfig(max_batch=32, max_wait_ms=5))  # an ASGI app

:mod:`~clfkit.serve.batcher` (pure asyncio micro-batcher), :mod:`~clfkit.serve.predictor` (bytes → views →
batched engine call → the same probabilities as clf-infer), :mod:`~clfkit.serve.uploads` (request bodies with the
size limit enforced while streaming), :mod:`~clfkit.serve.app` (routes, errors, web page, local API docs),
:mod:`~clfkit.serve.command` (``clf-serve``), :mod:`~clfkit.serve.loadgen` (load test client and a server
subprocess, for tests and benchmarks).  Needs the ``serve`` extra (FastAPI, uvicorn); never imports torch.
"""
from __future__ import annotations

from typing import Any

from clfkit.serve.batcher import BatchStats, MicroBatcher
from clfkit.serve.config import ServeConfig

__all__ = ["BatchStats", "MicroBatcher", "ServeConfig", "create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported on first use, so `clf-serve --help` and a missing extra get a clear message.
    if name == "create_app":
        from clfkit.serve.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
