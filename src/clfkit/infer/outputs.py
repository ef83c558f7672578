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
from typing import Any, BinaryIO

from clfkit.artifact import atomic_path
from clfkit.errors import ConfigError, OutputError
from clfkit.infer.pipeline import Prediction

__all__ = ["OUTPUT_FORMATS", "DIGITS", "csv_header", "prediction_record", "PredictionWriter", "open_writer",
           "finished_paths", "path_key"]

OUTPUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".json": "json"}
DIGITS = 6  # probabilities are rounded to this many decimals in every output (clf-serve too)


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a file name that is not valid UTF-8 (bytes from an old zip, which Python holds as surrogate
    escapes) is written with ``\\xe9``-style escapes instead of failing the run."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode("utf-8")


def csv_header(topk: int) -> list[str]:
    tops = [c for n in range(1, topk + 1) for c in (f"top{n}", f"top{n}_prob")]
    return ["path", "pred", "prob", "index", *tops, "error", "provider"]


def prediction_record(pred: Prediction, provider: str) -> dict[str, Any]:
    """A prediction as a JSON-ready dict (the JSON/JSONL row)."""
    return {
        "path": pred.path,
        "pred": pred.label,
        "prob": None if pred.prob is None else round(pred.prob, DIGITS),
        "index": pred.index,
        "topk": [{"label": name, "prob": round(p, DIGITS)} for name, p in pred.topk],
        "error": pred.error,
        "provider": provider,
    }


def _csv_cells(pred: Prediction, provider: str, topk: int) -> list[Any]:
    def fmt(p: float | None) -> str:
        return "" if p is None else f"{p:.{DIGITS}f}"

    tops: list[Any] = []
    for n in range(topk):
        name, p = pred.topk[n] if n < len(pred.topk) else ("", None)
        tops += [name, fmt(p)]
    return [pred.path, pred.label or "", fmt(pred.prob), "" if pred.index is None else pred.index, *tops,
            pred.error or "", provider]


class PredictionWriter:
    """Write predictions to a .csv/.jsonl/.json file, or CSV to stdout (``out`` None or ``-``).

    Use as a context manager: leaving the block normally finishes the file; leaving it by an exception keeps
    the streamed rows (.csv/.jsonl) or discards the unfinished .json.  ``append=True`` continues a .csv/.jsonl
    left by an earlier run (see :func:`finished_paths`) instead of starting a new one.

    A write that fails (disk full, the folder became read-only) cuts the file back to its last whole row and
    raises :class:`OutputError`, so even then the file holds only complete rows."""

    def __init__(self, out: str | os.PathLike | None, topk: int, provider: str, append: bool = False) -> None:
        self.topk = topk
        self.provider = provider
        self.rows = 0
        self._tmp: Path | None = None
        self._fh: BinaryIO | None = None
        self._good = 0  # bytes of whole rows on disk
        if out is None or os.fspath(out) == "-":
            self.path, self.format = None, "csv"  # stdout: append has no meaning there
        else:
            self.path = Path(out)
            fmt = OUTPUT_FORMATS.get(self.path.suffix.lower())
            if fmt is None:
                raise ConfigError(f"--out {self.path}: unknown format {self.path.suffix or '(no extension)'!r}; "
                                  f"name the file .csv, .jsonl or .json")
            self.format = fmt
            target = self.path
            append = append and fmt != "json"  # a .json array is only ever written whole
            if fmt == "json":
                self._tmp = target = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(target, "ab" if append else "wb")
                self._good = self._fh.tell()
            except OSError as exc:
                raise OutputError(f"--out {self.path}: cannot write it ({exc.strerror or exc})") from None
        if self.format == "csv" and not self._good:
            self._write(self._csv_line(csv_header(topk)), flush=True)
        elif self.format == "json":
            self._write("[")

    @staticmethod
    def _csv_line(cells: list[Any]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue()

    def _write(self, text: str, flush: bool = False) -> None:
        """Write ``text``; with ``flush`` (one whole row) it is on disk when this returns: nothing torn, nothing
        lost, and the file's length is the new end of its whole rows."""
        if self._fh is None:
            sys.stdout.write(_utf8(text).decode("utf-8"))
            if flush:
                sys.stdout.flush()
            return
        try:
            self._fh.write(_utf8(text))
            if flush:
                self._fh.flush()
        except OSError as exc:
            self._fail(exc)
        if flush:
            self._good = self._fh.tell()

    def _fail(self, exc: OSError) -> None:
        assert self._fh is not None and self.path is not None
        fh, self._fh = self._fh, None
        try:  # drop the torn tail (truncating frees space, so this works on a full disk too)
            os.ftruncate(fh.fileno(), self._good)
        except OSError:
            pass
        try:
            fh.close()
        except OSError:  # the close flushes what is still buffered, and fails the same way
            pass
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None
        kept = "" if self.format == "json" else f"; it keeps the {self.rows} whole rows written before"
        raise OutputError(f"--out {self.path}: cannot write ({exc.strerror or exc}){kept}") from None

    def write(self, pred: Prediction) -> None:
        if self.format == "csv":
            self._write(self._csv_line(_csv_cells(pred, self.provider, self.topk)), flush=True)
        else:
            text = json.dumps(prediction_record(pred, self.provider), ensure_ascii=False)
            if self.format == "jsonl":
                self._write(text + "\n", flush=True)
            else:  # json: the temporary file is not flushed row by row; it only counts once renamed
                self._write(("\n  " if self.rows == 0 else ",\n  ") + text)
        self.rows += 1

    def close(self, ok: bool = True) -> None:
        if self.format == "json" and ok and self._fh is not None:
            self._write("\n]\n" if self.rows else "]\n")
        if self._fh is not None:
            try:
                self._fh.flush()  # .json: the array so far; .csv/.jsonl rows are flushed already
            except OSError as exc:
                if ok:
                    self._fail(exc)
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:  # only after a failed flush of an interrupted run, whose rows are already cut back
                pass
        elif self.path is None:
            sys.stdout.flush()
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


def open_writer(out: str | os.PathLike | None, topk: int, provider: str, append: bool = False) -> PredictionWriter:
    """A :class:`PredictionWriter` for ``out`` (format from its extension; None or ``-`` = CSV on stdout)."""
    return PredictionWriter(out, topk, provider, append)


def path_key(path: str | os.PathLike) -> str:
    """How a row's ``path`` is matched to an input file when a run is continued: absolute, as written."""
    return _utf8(os.path.abspath(os.fspath(path))).decode("utf-8")


def finished_paths(out: str | os.PathLike, topk: int) -> set[str]:
    """The files (as :func:`path_key`) that already have a prediction row in ``out``, a .csv/.jsonl left by an
    earlier run, perhaps killed.  Rows with an error and a torn last row are removed from the file, so those
    files are tried again and every file ends up with exactly one row."""
    path = Path(out)
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt not in ("csv", "jsonl") or not path.is_file():
        return set()
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise OutputError(f"--skip-existing: cannot read --out {path} ({exc.strerror or exc})") from None
    complete = text.endswith("\n")  # a write cut short leaves no newline: that last record is dropped below
    if fmt == "csv":
        records = list(csv.reader(io.StringIO(text, newline="")))
        if not complete and records:
            records.pop()
        header = csv_header(topk)
        if records and records[0] != header:
            raise ConfigError(f"--skip-existing: {path} has other columns than this run writes ({len(records[0])}"
                              f" vs {len(header)}); use the same --topk as the run that wrote it, or another --out")
        rows = records[1:]
        error = header.index("error")
        kept = [r for r in rows if len(r) == len(header) and r[1] and not r[error]]
        keys = {path_key(r[0]) for r in kept}
        replacement = "".join(PredictionWriter._csv_line(r) for r in [header, *kept])
        dropped = len(rows) - len(kept) or not records
    else:
        lines = text.split("\n")
        lines.pop()  # "" after the last newline, or a torn record
        kept, keys = [], set()
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict) or row.get("error") or not row.get("pred"):
                continue
            if len(row.get("topk") or ()) != topk:
                raise ConfigError(f"--skip-existing: {path} has top-{len(row.get('topk') or ())} rows; use the same"
                                  " --topk as the run that wrote it, or another --out")
            kept.append(line + "\n")
            keys.add(path_key(row["path"]))
        replacement = "".join(kept)
        dropped = len(lines) - len(kept)
    if dropped or not complete:
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(replacement.encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"--skip-existing: cannot rewrite --out {path} ({exc.strerror or exc})") from None
    return keys
