"""Atomic report writers: a reader never sees a half-written JSON, CSV or PNG.

Every writer goes through :func:`atomic_path`: write a temporary file next to the target, then
``os.replace`` it into place (atomic on POSIX and Windows when both sit in one folder).  On failure the
temporary file is removed and an existing target is left untouched.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from clfkit.artifact import atomic_path

__all__ = ["atomic_path", "to_jsonable", "write_json", "write_csv_matrix"]


def to_jsonable(obj: Any, where: str = "$") -> Any:
    """``obj`` with numpy scalars/arrays, tuples and paths turned into plain JSON types.

    Raises ValueError naming the key path (``$.per_class.cat.f1``) for NaN/infinity, and TypeError for
    objects JSON cannot represent."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if isinstance(key, np.generic):
                key = key.item()
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise TypeError(f"{where}: dict key {key!r} of type {type(key).__name__} is not JSON-serialisable")
            out[key] = to_jsonable(value, f"{where}.{key}")
        return out
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist(), where)
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"{where} is {obj}; JSON reports must hold finite numbers (use None for 'undefined')")
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"{where}: {type(obj).__name__} is not JSON-serialisable")


def write_json(obj: Any, path: str | os.PathLike) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 2, sorted keys, strict: no NaN) atomically; returns the path."""
    text = json.dumps(to_jsonable(obj), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n", encoding="utf-8")
    return path


def write_csv_matrix(cm: np.ndarray, class_names: Sequence[str], path: str | os.PathLike) -> Path:
    """Write a (C, C) confusion matrix as CSV: a header of predicted classes, one row per true class."""
    cm = np.asarray(cm)
    names = [str(n) for n in class_names]
    if cm.ndim != 2 or cm.shape != (len(names), len(names)):
        raise ValueError(f"confusion matrix has shape {cm.shape} but there are {len(names)} class names; "
                         f"expected ({len(names)}, {len(names)})")
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["true\\predicted", *names])
            for name, row in zip(names, cm.tolist()):
                writer.writerow([name, *row])
    return path
