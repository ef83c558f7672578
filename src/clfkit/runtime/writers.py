"""Prediction writers, one per output format, chosen by the file's suffix.  No torch import.

============  ======================================================================================
suffix        what is written
============  ======================================================================================
``.csv``      ``path, pred, prob, index, top1, top1_prob, …, topK, topK_prob, error, provider``
``.jsonl``    one :func:`~clfkit.runtime.records.prediction_record` object per line
``.json``     one array of those objects
============  ======================================================================================

``pred``/``prob``/``index`` are the predicted class, its probability (TTA-averaged when TTA is on) and its
position in the model's class list; with ``--reject-below`` P, ``pred`` is ``unknown`` when that probability is
below P, and ``prob``/``index``/``top1`` still give the top class; ``topN``/``topN_prob`` the N-th most likely class; ``error`` is empty for
a prediction and holds the reason for a file that could not be read (its other cells are then empty);
``provider`` is what computed the row.  Without an output file, CSV goes to stdout.

Streaming (``.csv``, ``.jsonl``): each row is formatted completely and then written and flushed in one call,
so an interrupted run keeps every completed row and never a torn one, and :func:`finished_paths` lets a run
continue where one left off.  A ``.json`` array is only valid once closed, so it is written to a hidden
temporary file and renamed into place when the run finishes; an interrupted run leaves no ``.json``.

A new format is a :class:`PredictionWriter` subclass registered with :func:`register_writer`.
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

from clfkit.errors import ConfigError, OutputError
from clfkit.io import atomic_path
from clfkit.runtime.records import DIGITS, Prediction, prediction_record

__all__ = ["PredictionWriter", "CsvWriter", "JsonlWriter", "JsonWriter", "WRITERS", "register_writer",
           "csv_header", "open_writer", "finished_paths", "path_key"]


def _utf8(text: str) -> bytes:
    """UTF-8 bytes; a file name that is not valid UTF-8 (bytes from an old zip, which Python holds as surrogate
    escapes) is written with ``\\xe9``-style escapes instead of failing the run."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace").encode("utf-8")


def path_key(path: str | os.PathLike) -> str:
    """How a row's ``path`` is matched to an input file when a run is continued: absolute, as written (a URI
    such as ``s3://bucket/a.jpg`` as it is)."""
    text = os.fspath(path)
    return _utf8(text if "://" in text else os.path.abspath(text)).decode("utf-8")


def csv_header(topk: int) -> list[str]:
    tops = [c for n in range(1, topk + 1) for c in (f"top{n}", f"top{n}_prob")]
    return ["path", "pred", "prob", "index", *tops, "error", "provider"]


class PredictionWriter:
    """Write predictions to a file, or to stdout (``out`` None or ``-``, CSV only); the base of every format.

    Use as a context manager: leaving the block normally finishes the file; leaving it by an exception keeps
    the streamed rows or discards an unfinished whole-file format.  ``append=True`` continues a streamed file
    left by an earlier run (see :func:`finished_paths`) instead of starting a new one.

    A write that fails (disk full, the folder became read-only) cuts the file back to its last whole row and
    raises :class:`OutputError`, so even then the file holds only complete rows.

    Subclasses set ``suffix`` and ``streams`` and define :meth:`header`, :meth:`row` and, when they stream,
    :meth:`keep_finished`."""

    suffix = ""
    streams = True  # rows are flushed one by one (else the file appears, whole, when the run ends)

    def __init__(self, out: str | os.PathLike | None, topk: int, provider: str, append: bool = False) -> None:
        self.topk = topk
        self.provider = provider
        self.rows = 0
        self._tmp: Path | None = None
        self._fh: BinaryIO | None = None
        self._good = 0  # bytes of whole rows on disk
        self.path = None if out is None or os.fspath(out) == "-" else Path(out)
        if self.path is not None:
            target = self.path
            append = append and self.streams
            if not self.streams:
                self._tmp = target = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                self._fh = open(target, "ab" if append else "wb")
                self._good = self._fh.tell()
            except OSError as exc:
                raise OutputError(f"--out {self.path}: cannot write it ({exc.strerror or exc})") from None
        if not self._good:
            self._write(self.header(), flush=self.streams)

    # --- the format ----------------------------------------------------------------------------------------
    def header(self) -> str:
        """Text at the start of a new file ("" for none)."""
        return ""

    def row(self, pred: Prediction) -> str:
        """The text of one row, complete (with its line end)."""
        raise NotImplementedError

    def footer(self) -> str:
        """Text at the end of a finished file."""
        return ""

    @classmethod
    def keep_finished(cls, text: str, topk: int, path: Path) -> tuple[str, set[str], bool]:
        """For continuing a run: (the file's text keeping only finished rows, their :func:`path_key` s, whether
        anything was dropped).  Rows with an error and a torn last row are dropped."""
        raise ConfigError(f"--skip-existing: --out {path} is a {cls.suffix} file, written only when a run "
                          "finishes; use .csv or .jsonl for runs you may need to continue")

    # --- writing -------------------------------------------------------------------------------------------
    def _write(self, text: str, flush: bool = False) -> None:
        """Write ``text``; with ``flush`` (one whole row) it is on disk when this returns: nothing torn, nothing
        lost, and the file's length is the new end of its whole rows."""
        if not text:
            return
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
        kept = f"; it keeps the {self.rows} whole rows written before" if self.streams else ""
        raise OutputError(f"--out {self.path}: cannot write ({exc.strerror or exc}){kept}") from None

    def write(self, pred: Prediction) -> None:
        # A whole-file format is not flushed row by row: its temporary file only counts once renamed.
        self._write(self.row(pred), flush=self.streams)
        self.rows += 1

    def close(self, ok: bool = True) -> None:
        if ok and self._fh is not None:
            self._write(self.footer())
        if self._fh is not None:
            try:
                self._fh.flush()  # whole-file formats: everything so far; streamed rows are flushed already
            except OSError as exc:
                if ok:
                    self._fail(exc)
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:  # only after a failed flush of an interrupted run, whose rows are already cut back
                pass
        elif self.path is None:
            if ok:
                self._write(self.footer())
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


def _csv_line(cells: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
    return buffer.getvalue()


class CsvWriter(PredictionWriter):
    suffix = ".csv"

    def header(self) -> str:
        return _csv_line(csv_header(self.topk))

    def row(self, pred: Prediction) -> str:
        def fmt(p: float | None) -> str:
            return "" if p is None else f"{p:.{DIGITS}f}"

        tops: list[Any] = []
        for n in range(self.topk):
            name, p = pred.topk[n] if n < len(pred.topk) else ("", None)
            tops += [name, fmt(p)]
        return _csv_line([pred.path, pred.label or "", fmt(pred.prob), "" if pred.index is None else pred.index,
                          *tops, pred.error or "", pred.provider or self.provider])

    @classmethod
    def keep_finished(cls, text: str, topk: int, path: Path) -> tuple[str, set[str], bool]:
        records = list(csv.reader(io.StringIO(text, newline="")))
        if not text.endswith("\n") and records:  # a write cut short leaves no newline: drop that last record
            records.pop()
        header = csv_header(topk)
        if records and records[0] != header:
            raise ConfigError(f"--skip-existing: {path} has other columns than this run writes ({len(records[0])}"
                              f" vs {len(header)}); use the same --topk as the run that wrote it, or another --out")
        rows = records[1:]
        error = header.index("error")
        kept = [r for r in rows if len(r) == len(header) and r[1] and not r[error]]
        replacement = "".join(_csv_line(r) for r in [header, *kept])
        return replacement, {path_key(r[0]) for r in kept}, bool(len(rows) - len(kept) or not records)


class JsonlWriter(PredictionWriter):
    suffix = ".jsonl"

    def row(self, pred: Prediction) -> str:
        return json.dumps(prediction_record(pred, self.provider), ensure_ascii=False) + "\n"

    @classmethod
    def keep_finished(cls, text: str, topk: int, path: Path) -> tuple[str, set[str], bool]:
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
        return "".join(kept), keys, len(lines) != len(kept)


class JsonWriter(PredictionWriter):
    suffix = ".json"
    streams = False

    def header(self) -> str:
        return "["

    def row(self, pred: Prediction) -> str:
        text = json.dumps(prediction_record(pred, self.provider), ensure_ascii=False)
        return ("\n  " if self.rows == 0 else ",\n  ") + text

    def footer(self) -> str:
        return "\n]\n" if self.rows else "]\n"


WRITERS: dict[str, type[PredictionWriter]] = {}


def register_writer(writer: type[PredictionWriter]) -> None:
    """Make ``writer.suffix`` a valid ``--out`` extension."""
    WRITERS[writer.suffix] = writer


for _writer in (CsvWriter, JsonlWriter, JsonWriter):
    register_writer(_writer)


def _writer_for(path: Path) -> type[PredictionWriter]:
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        *others, last = WRITERS
        raise ConfigError(f"--out {path}: unknown format {path.suffix or '(no extension)'!r}; name the file "
                          f"{', '.join(others)} or {last}")
    return writer


def open_writer(out: str | os.PathLike | None, topk: int, provider: str, append: bool = False) -> PredictionWriter:
    """The writer for ``out``, by its suffix (None or ``-``: CSV on stdout)."""
    if out is None or os.fspath(out) == "-":
        return CsvWriter(None, topk, provider)
    return _writer_for(Path(out))(out, topk, provider, append)


def finished_paths(out: str | os.PathLike, topk: int) -> set[str]:
    """The files (as :func:`path_key`) that already have a prediction row in ``out``, a streamed file left by
    an earlier run, perhaps killed.  Rows with an error and a torn last row are removed from the file, so those
    files are tried again and every file ends up with exactly one row."""
    path = Path(out)
    writer = WRITERS.get(path.suffix.lower())
    if writer is None or not writer.streams or not path.is_file():
        return set()
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise OutputError(f"--skip-existing: cannot read --out {path} ({exc.strerror or exc})") from None
    replacement, keys, dropped = writer.keep_finished(text, topk, path)
    if dropped or not text.endswith("\n"):
        try:
            with atomic_path(path) as tmp:
                tmp.write_bytes(replacement.encode("utf-8"))
        except OSError as exc:
            raise OutputError(f"--skip-existing: cannot rewrite --out {path} ({exc.strerror or exc})") from None
    return keys
