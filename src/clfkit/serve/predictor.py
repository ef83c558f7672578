"""Image bytes → prediction, the same numbers and the same record as ``clf-infer``, with requests batched
together.  No torch import.

Per request, in the decode thread pool: :func:`decode_views` (``load_rgb`` → ``tta_views`` → ``engine.prepare``)
gives the model input of one image, (V, ...) for V views.  Per batch, in the one model thread:
:func:`batch_view_probs` runs the inputs of every request of the batch as ONE model call, with the functions
:func:`clfkit.runtime.pipeline.predict` uses (same views, same seed); each request's answer is then
:func:`clfkit.runtime.records.make_prediction` → :func:`~clfkit.runtime.records.prediction_record`, the row
``clf-infer`` writes for the same photo (``tests/serve/test_serve_app.py`` holds them to 1e-6).
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from clfkit.parallel import default_workers
from clfkit.runtime.engine import Engine
from clfkit.runtime.pipeline import prepared_views, view_probs
from clfkit.runtime.records import Prediction, make_prediction, prediction_record
from clfkit.serve.batcher import MicroBatcher
from clfkit.serve.config import ServeConfig
from clfkit.vision.images import load_rgb
from clfkit.vision.tta import tta_view_names

__all__ = ["Predictor", "decode_views", "batch_view_probs", "response_body"]



def decode_views(engine: Engine, data: bytes, views: int, seed: int = 0) -> np.ndarray:
    """Encoded image bytes → the prepared model input of its ``views`` TTA views, (V, 3, H, W) or (V, H, W, 3).

    Raises :class:`ImageError` (reason: empty, truncated, not an image, decompression bomb, …)."""
    return prepared_views(engine, load_rgb(data), views, seed)


def batch_view_probs(engine: Engine, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """One model call for the inputs of several images (each (V, ...), same V) → (V, C) probabilities each."""
    return list(view_probs(engine, inputs))


def response_body(pred: Prediction, provider: str, tta: int) -> dict[str, Any]:
    """The JSON answer for one image: the prediction record without ``path`` and ``error`` (a failed upload is
    an HTTP error instead), plus the TTA count."""
    record = prediction_record(pred, provider)
    del record["path"], record["error"]
    return {**record, "tta": tta}


class Predictor:
    """The engine behind a decode pool and a micro-batcher.  ``start()``/``close()`` inside the event loop."""

    def __init__(self, engine: Engine, config: ServeConfig) -> None:
        self.engine = engine
        self.config = config
        self.workers = config.workers or default_workers()
        self._decode_pool = ThreadPoolExecutor(self.workers, thread_name_prefix="clf-serve-decode")
        # One model thread: batches run one after another, and requests arriving meanwhile form the next one.
        self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="clf-serve-model")
        self.batcher: MicroBatcher[np.ndarray, np.ndarray] = MicroBatcher(
            lambda inputs: batch_view_probs(engine, inputs), max_batch=config.max_batch,
            max_wait_s=config.max_wait_ms / 1000, executor=self._model_thread)

    def start(self) -> None:
        self.batcher.start()

    async def close(self) -> None:
        await self.batcher.close()
        self._decode_pool.shutdown(wait=False, cancel_futures=True)
        self._model_thread.shutdown(wait=False, cancel_futures=True)

    async def predict(self, data: bytes) -> dict[str, Any]:
        """Decode (thread pool) → batch (model thread) → the JSON body; raises ImageError for a bad image."""
        loop = asyncio.get_running_loop()
        inputs = await loop.run_in_executor(self._decode_pool, decode_views, self.engine, data,
                                            self.config.views, self.config.seed)
        probs = await self.batcher.submit(inputs)  # (V, C)
        spec = self.engine.spec
        pred = make_prediction("", probs, spec.class_names, min(self.config.topk, spec.num_classes),
                               reject_below=self.config.reject_below)
        return response_body(pred, self.engine.provider, self.config.tta)

    def describe(self) -> dict[str, Any]:
        """GET /model: what runs, where, and how requests are batched."""
        engine, config = self.engine, self.config
        return {
            "name": engine.path.name,
            "classes": list(engine.spec.class_names),
            "num_classes": engine.spec.num_classes,
            "spec": engine.spec.to_dict(),
            "input_format": engine.input_format,
            "precision": engine.precision,
            "provider": engine.provider,
            "device": engine.device,
            "runtime": engine.runtime,
            "precision_run": engine.precision_run,
            "chosen_by": engine.choice.reason,
            "max_batch": config.max_batch,
            "max_wait_ms": config.max_wait_ms,
            "tta": config.tta,
            "tta_views": tta_view_names(config.tta),
            "topk": min(config.topk, engine.spec.num_classes),
            "reject_below": config.reject_below,
            "max_upload_mb": config.max_upload_mb,
            "decode_workers": self.workers,
        }

    def health(self) -> dict[str, Any]:
        """GET /health: liveness, queue depth and the batch sizes run so far."""
        return {"status": "ok", "model_loaded": True, "queued": self.batcher.queued,
                "running": self.batcher.running, "batching": self.batcher.stats.as_dict()}
