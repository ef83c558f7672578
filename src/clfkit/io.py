"""Writing files so that no reader ever sees half of one, and the one JSON and CSV writer.  No torch import.

Every file clfkit writes goes through :func:`atomic_path`: a temporary file next to the target, then
``os.replace`` into place (atomic on POSIX and Windows when both sit in one folder).  An interrupted writer
(crash, SIGKILL, disk full) leaves the previous file or nothing, never half a file.  :func:`write_json` and
:func:`write_csv` are the only JSON and CSV writers of the package (streamed prediction rows excepted: they
are written row by row, see :mod:`clfkit.runtime.writers`).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from clfkit.errors import OutputError

__all__ = ["file_sha256", "atomic_path", "check_writable", "write_text", "to_jsonable", "write_json", "write_csv",
           "write_csv_matrix"]


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; it replaces ``final`` only if the block succeeds.

    An interrupted writer (crash, SIGKILL, disk full) leaves the previous file or nothing at ``final``, never
    half a file (``os.replace`` is atomic within one folder).  The temporary name is hidden and unique per
    process; the caller creates the file, so it gets normal permissions.  The parent folder is created.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(folder: str | os.PathLike, name: str) -> Path:
    """Create ``folder`` and prove a file can be made in it, before minutes of work whose results go there.

    Raises :class:`~clfkit.errors.OutputError` starting with ``name`` (the flag and path the user gave) when it
    cannot (read-only filesystem, no permission, a file in the way).  A folder that did not exist is left
    created; nothing else is left behind."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".clfkit-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{name}: cannot write there ({exc.strerror or exc}); choose a folder you can write "
                          "to") from None
    return folder


def write_text(text: str, path: str | os.PathLike) -> Path:
    """Write ``text`` as UTF-8 atomically; returns the path."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def to_jsonable(obj: Any, where: str = "$", *, null_non_finite: bool = False) -> Any:
    """``obj`` with numpy scalars/arrays, tuples and paths turned into plain JSON types.

    Raises ValueError naming the key path (``$.per_class.cat.f1``) for NaN/infinity (or writes them as null
    with ``null_non_finite``), and TypeError for objects JSON cannot represent."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(key, np.generic):
                key = key.item()
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"{where}: dict key {key!r} of type {type(key).__name__} is not JSON-serialisable")
            out[key] = to_jsonable(value, f"{where}.{key}", null_non_finite=null_non_finite)
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]", null_non_finite=null_non_finite) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), where, null_non_finite=null_non_finite)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        if null_non_finite:
            return None
        raise ValueError(f"{where} is {obj}; JSON reports must hold finite numbers (use None for 'undefined')")
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-serialisable")


def write_json(obj: Any, path: str | os.PathLike, *, null_non_finite: bool = False) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 2, sorted keys; strict: NaN raises, or becomes null with
    ``null_non_finite``) atomically; returns the path."""
    return write_text(json.dumps(to_jsonable(obj, null_non_finite=null_non_finite), indent=2, sort_keys=True,
                                 ensure_ascii=False, allow_nan=False) + "\n", path)


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Iterable[object]]) -> Path:
    """Write a CSV file (``\\n`` line ends) atomically; ``rows`` may be a generator, so a big table is never held.

    Text that is not valid UTF-8 (file names from old archives) is written with backslash escapes instead of
    failing the write."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8", errors="backslashreplace") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
    return path


def write_csv_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Write a (C, C) confusion matrix as CSV: a header of predicted classes, one row per true class."""
    cm = np.asarray(cm)
    names = [str(n) for n in class_names]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix has shape {cm.shape} but there are {len(names)} class names; "
                         f"expected ({len(names)}, {len(names)})")
    return write_csv(path, ["true\\predicted", *names], ([name, *row] for name, row in zip(names, cm.tolist())))


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in 1 MiB blocks (hex)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
