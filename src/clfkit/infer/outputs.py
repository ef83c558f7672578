"""Prediction writers: .csv and .jsonl stream, .json is written atomically at the end.  No torch import.

CSV columns (one row per input file, in input order)::

    path, pred, prob, index, top1, top1_prob, …, topK, topK_prob, error, provider

``pred``/``prob``/``index`` are the predicted class, its probability (TTA-averaged when TTA is on) and its
position in the model's class list; ``topN``/``topN_prob`` the N-th most likely class; ``error`` is empty for
a prediction and holds the reason for a file that could not be read (its other cells are then empty);
``provider`` is the onnxruntime execution provider that computed the row.  JSON Lines rows carry the same
fields with ``topk`` as a list of ``{"label", "prob"}`` objects and ``null`` for empty values; ``.json`` is one
array of those rows.

Streaming: each CSV/JSONL row is formatted completely and then written and flushed in one call, so an
interrupted run keeps every completed row and never a torn one.  A ``.json`` array is only valid once closed,
so it is written to a hidden temporary file and renamed into place when the run finishes; an interrupted run
leaves no ``.json`` (use ``.csv`` or ``.jsonl`` for runs you may interrupt).
"""
from __future__ import annotations

import csv
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any, TextIO

from clfkit.errors import ConfigError
from clfkit.infer.pipeline import Prediction

__all__ = ["OUTPUT_FORMATS", "csv_header", "prediction_record", "PredictionWriter", "open_writer"]

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "json"}
_DIGITS = 6


def csv_header(topk: int) -> list[str]:
    tops = [c for n in range(1, topk + 1) for c in (f"top{n}", f"top{n}_prob")]
    return ["path", "pred", "prob", "index", *tops, "error", "provider"]


def prediction_record(pred: Prediction, provider: str) -> dict[str, Any]:
    """A prediction as a JSON-ready dict (the JSON/JSONL row)."""
    return {
        "path": pred.path,
        "pred": pred.label,
        "prob": None if pred.prob is None else round(pred.prob, _DIGITS),
        "index": pred.index,
        "topk": [{"label": name, "prob": round(p, _DIGITS)} for name, p in pred.topk],
        "error": pred.error,
        "provider": provider,
    }


def _csv_cells(pred: Prediction, provider: str, topk: int) -> list[Any]:
    def fmt(p: float | None) -> str:
        return "" if p is None else f"{p:.{_DIGITS}f}"

    tops: list[Any] = []
    for n in range(topk):
        name, p = pred.topk[n] if n < len(pred.topk) else ("", None)
        tops += [name, fmt(p)]
    return [pred.path, pred.label or "", fmt(pred.prob), "" if pred.index is None else pred.index, *tops,
            pred.error or "", provider]


class PredictionWriter:
    """Write predictions to a .csv/.jsonl/.json file, or CSV to stdout (``out`` None or ``-``).

    Use as a context manager: leaving the block normally finishes the file; leaving it by an exception keeps
    the streamed rows (.csv/.jsonl) or discards the unfinished .json."""

    def __init__(self, out: str | os.PathLike | None, topk: int, provider: str) -> None:
        self.topk = topk
        self.provider = provider
        self.rows = 0
        self._tmp: Path | None = None
        if out is None or os.fspath(out) == "-":
            self.path, self.format, self._own = None, "csv", False
            self._fh: TextIO = sys.stdout
        else:
            self.path = Path(out)
            fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
            if fmt is None:
                raise ConfigError(f"--out {self.path}: unknown format {self.path.suffix or '(no extension)'!r}; "
                                  f"name the file .csv, .jsonl or .json")
            self.format, self._own = fmt, True
            target = self.path
            if fmt == "json":
                self._tmp = target = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(target, "w", encoding="utf-8", newline="")
            except OSError as exc:
                raise ConfigError(f"--out {self.path}: cannot write it ({exc.strerror or exc})") from None
        if self.format == "csv":
            self._emit(self._csv_line(csv_header(topk)))
        elif self.format == "json":
            self._fh.write("[")

    @staticmethod
    def _csv_line(cells: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    def _emit(self, text: str) -> None:
        self._fh.write(text)  # one whole row per call, then flushed: nothing torn, nothing lost
        self._fh.flush()

    def write(self, pred: Prediction) -> None:
        if self.format == "csv":
            self._emit(self._csv_line(_csv_cells(pred, self.provider, self.topk)))
        else:
            text = json.dumps(prediction_record(pred, self.provider), ensure_ascii=False)
            if self.format == "jsonl":
                self._emit(text + "\n")
            else:  # json: the temporary file is not flushed row by row; it only counts once renamed
                self._fh.write(("\n  " if self.rows == 0 else ",\n  ") + text)
        self.rows += 1

    def close(self, ok: bool = True) -> None:
        if self.format == "json" and ok:
            self._fh.write("\n]\n" if self.rows else "]\n")
        if self._own:
            self._fh.close()
        else:
            self._fh.flush()
        if self._tmp is not None:
            if ok:
                os.replace(self._tmp, self.path)
            else:
                self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> "PredictionWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(ok=exc_type is None)


def open_writer(out: str | os.PathLike | None, topk: int, provider: str) -> PredictionWriter:
    """A :class:`PredictionWriter` for ``out`` (format from its extension; None or ``-`` = CSV on stdout)."""
    return PredictionWriter(out, topk, provider)
