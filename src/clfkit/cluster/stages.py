"""The work of one cluster job, stage by stage, as functions of column batches.  No torch, no ray import.

Ray Data calls these on its workers (:mod:`clfkit.cluster.job` wires them); they are plain functions of
``{column: numpy array}`` batches, so tests run them without a cluster.

1. :func:`read_files` (CPU task): ``order, path, source`` → the file's raw bytes, or the reason it cannot be read.
   Bytes, never decoded photos: Ray Data runs it and the next stage in one task (both reserve the same CPUs),
   and only the model-sized views below cross the object store.
2. :func:`decode_files` (CPU task): bytes → clfkit's one preprocessing
   (:func:`clfkit.runtime.pipeline.decode_views`) → the uint8 view pixels as bytes plus their shape.  A fixed
   binary column, never a ragged image column: photos of mixed modes and sizes cannot break Arrow batching.
3. :class:`Predictor` (actor, one model load per actor): pixels → :class:`~clfkit.runtime.engine.Engine` →
   one row per file with the columns of the CSV output (:func:`clfkit.runtime.writers.csv_header`), plus
   ``order`` and, for a report, the class probabilities.  Built as an Arrow table with a fixed schema, so an
   all-error batch has the same column types as any other (Parquet shards stay one dataset).

The reasons in ``error`` are the ones a local run writes for the same file: reading uses the same checks
(:func:`clfkit.vision.images.read_image_bytes`) and decoding the same code.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from clfkit.errors import ImageError
from clfkit.runtime.pipeline import decode_views, view_probs
from clfkit.runtime.records import DIGITS, check_reject_below, make_prediction
from clfkit.runtime.uris import is_uri, read_uri_bytes
from clfkit.runtime.writers import csv_header
from clfkit.spec import ModelSpec
from clfkit.vision.images import read_image_bytes

__all__ = ["read_files", "decode_files", "Predictor", "row_schema"]

Batch = dict[str, np.ndarray]


def _table(columns: dict[str, Any], types: dict[str, Any]) -> Any:
    """An Arrow table with explicit column types: a batch whose ``error`` cells are all empty must still have a
    string column (numpy batches would turn it into NaN floats)."""
    import pyarrow as pa

    return pa.table({name: pa.array(values, type=types[name]) for name, values in columns.items()})


def _types() -> dict[str, Any]:
    import pyarrow as pa

    return {"order": pa.int64(), "path": pa.string(), "data": pa.binary(), "pixels": pa.binary(),
            "shape": pa.list_(pa.int64(), 4), "error": pa.string()}


def read_files(batch: Batch) -> Batch:
    """``order, path, source`` → ``order, path, data`` (bytes; b"" on error), ``error`` (None or the reason).

    ``path`` is the name the row is written under (as the user gave it, maybe relative); ``source`` is where
    a worker reads it (absolute, or the URI): workers do not run in the driver's folder."""
    data, errors = [], []
    for path in batch["source"]:
        try:
            data.append(read_uri_bytes(path) if is_uri(path) else read_image_bytes(path))
            errors.append(None)
        except ImageError as exc:
            data.append(b"")
            errors.append(exc.reason)
    return _table({"order": batch["order"], "path": batch["path"], "data": data, "error": errors}, _types())


def decode_files(batch: Batch, *, spec: ModelSpec, input_format: str, views: int, draft: int | None = None,
                 seed: int = 0) -> Batch:
    """``order, path, data, error`` → ``order, path, pixels`` (uint8 view pixels as bytes), ``shape`` (B, 4),
    ``error``.  A file that does not decode gets its reason in ``error`` and empty pixels."""
    pixels, shapes, errors = [], [], []
    for data, error in zip(batch["data"], batch["error"]):
        if error is None:
            views_px, error = decode_views(bytes(data), spec, input_format, views, draft=draft, seed=seed)
        ok = error is None
        pixels.append(np.ascontiguousarray(views_px).tobytes() if ok else b"")
        shapes.append(list(views_px.shape) if ok else [0, 0, 0, 0])
        errors.append(error)
    return _table({"order": batch["order"], "path": batch["path"], "pixels": pixels, "shape": shapes,
                   "error": errors}, _types())


def row_schema(topk: int, num_classes: int, keep_probs: bool = False) -> Any:
    """The Arrow schema of the predictor's rows: ``order`` + the CSV columns (+ probabilities for a report)."""
    import pyarrow as pa

    types = {"prob": pa.float64(), "index": pa.int64()}
    types.update({f"top{n}_prob": pa.float64() for n in range(1, topk + 1)})
    fields = [pa.field("order", pa.int64())]
    fields += [pa.field(name, types.get(name, pa.string())) for name in csv_header(topk)]
    if keep_probs:
        fields += [pa.field(name, pa.list_(pa.float32(), num_classes)) for name in ("probs", "probs_no_tta")]
    return pa.schema(fields)


def _round(p: float) -> float:
    return round(float(p), DIGITS)


class Predictor:
    """One actor's model: an Engine opened once, then one call per batch of decoded files.

    ``open_engine`` builds the :class:`~clfkit.runtime.engine.Engine` on the actor's node (its runtime choice
    is that node's); ``on_start`` is told the actor's pid once, for the job's summary."""

    def __init__(self, open_engine: Callable[[], Any], *, topk: int, keep_probs: bool = False,
                 on_start: Callable[[int], None] | None = None, reject_below: float | None = None) -> None:
        self.engine = open_engine()
        self.topk = min(topk, self.engine.spec.num_classes)
        self.keep_probs = keep_probs
        self.reject_below = check_reject_below(reject_below, self.engine.spec.class_names)  # "unknown" below it
        self.schema = row_schema(self.topk, self.engine.spec.num_classes, keep_probs)
        if on_start is not None:
            on_start(os.getpid())

    def __call__(self, batch: Batch) -> Any:
        import pyarrow as pa

        engine, spec = self.engine, self.engine.spec
        good = [i for i, e in enumerate(batch["error"]) if e is None]
        inputs = [engine.prepare(np.frombuffer(batch["pixels"][i], np.uint8).reshape(batch["shape"][i]))
                  for i in good]
        probs = view_probs(engine, inputs) if good else None  # (B_good, V, C)
        columns: dict[str, list] = {f.name: [] for f in self.schema}
        row_of = {i: r for r, i in enumerate(good)}
        for i, (order, path, error) in enumerate(zip(batch["order"], batch["path"], batch["error"])):
            columns["order"].append(int(order))
            columns["path"].append(str(path))
            columns["provider"].append(engine.provider)
            pred = None if error is not None else make_prediction(str(path), probs[row_of[i]], spec.class_names,
                                                                  self.topk, self.keep_probs, self.reject_below)
            columns["error"].append(error)
            columns["pred"].append(pred.label if pred else None)
            columns["prob"].append(_round(pred.prob) if pred else None)
            columns["index"].append(pred.index if pred else None)
            for n in range(self.topk):
                name, p = pred.topk[n] if pred else (None, None)
                columns[f"top{n + 1}"].append(name)
                columns[f"top{n + 1}_prob"].append(None if p is None else _round(p))
            if self.keep_probs:
                columns["probs"].append(pred.probs.tolist() if pred else None)
                columns["probs_no_tta"].append(pred.probs_no_tta.tolist() if pred else None)
        return pa.Table.from_pydict(columns, schema=self.schema)
