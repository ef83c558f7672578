"""The notebook API: the whole flow as five functions, each the library function behind one command.

>>> import clfkit
>>> clfkit.split_folder("images/", "data/", seed=0)                      # clf-split
>>> run = clfkit.train_model("data/", out="runs/x", epochs=30)           # clf-train (any TrainConfig field)
>>> clfkit.export_onnx("runs/x/model.pt", "model.onnx")                  # clf-export, verified
>>> model = clfkit.load_model("model.onnx")                              # torch-free from here on
>>> [p.label for p in model.predict(["a.jpg", pil_image, uint8_array])]
>>> clfkit.read_metrics("runs/x")["test"]["accuracy"]

Each function takes the command's options as keyword arguments (same names, same defaults, same validation)
and returns the command's result object.  ``load_model`` and ``read_metrics`` never import torch.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clfkit.errors import ConfigError, DataError

if TYPE_CHECKING:  # the heavy modules load only when their function is called
    from clfkit.data.make_split import SplitResult
    from clfkit.export.api import ExportResult
    from clfkit.runtime.engine import Engine
    from clfkit.train.trainer import FitResult

__all__ = ["split_folder", "train_model", "export_onnx", "load_model", "read_metrics"]


def split_folder(src: str | os.PathLike, dst: str | os.PathLike = "data", **options: Any) -> "SplitResult":
    """Split ``src/<class>/*`` into ``dst/{train,val,test}/<class>/`` with a manifest (``clf-split``).

    Options: ``val``, ``test``, ``seed``, ``min_images``, ``mode``, ``overwrite``, ``workers``, ``progress``,
    ``near_duplicates``."""
    from clfkit.data.make_split import make_split

    options.setdefault("progress", False)
    return make_split(Path(src), Path(dst), **options)


def train_model(data: str | os.PathLike = "data", *, progress: bool = False, log: Any = None,
                **options: Any) -> "FitResult":
    """Train a classifier on ``data`` (what :func:`split_folder` writes) and write its run folder (``clf-train``).

    ``options`` are :class:`~clfkit.train.config.TrainConfig` fields (``out``, ``backbone``, ``mode``,
    ``epochs``, …); ``log`` receives the progress lines (default: none)."""
    from clfkit.train.config import TrainConfig
    from clfkit.train.trainer import fit

    return fit(TrainConfig(data=Path(data), **options), progress=progress, log=log or (lambda msg: None))


def export_onnx(checkpoint: str | os.PathLike, out: str | os.PathLike = "model.onnx", *,
                check: bool = True, **options: Any) -> "ExportResult":
    """Export a run's ``model.pt`` to a verified ONNX file (``clf-export``); options as the command's
    (``int8``, ``fp16``, ``verify_dir``, ``atol``, …).  With ``check`` (the default) a file that fails its
    verification raises :class:`~clfkit.errors.ModelError`, as the command exits non-zero."""
    from clfkit.errors import ModelError
    from clfkit.export.api import export_checkpoint

    result = export_checkpoint(Path(checkpoint), Path(out), **options)
    if check and not result.passed:
        names = ", ".join(Path(r.onnx_file).name for r in result.failed)
        raise ModelError(f"verification FAILED for {names}; details in {result.verify_json}")
    return result


def load_model(path: str | os.PathLike = "model.onnx", **options: Any) -> "Engine":
    """Open an exported model for prediction, without torch (``device``, ``threads``, ``runtime``, ``precision``,
    ``spec``; runtime and precision "auto" as in clf-infer);
    ``model.predict(items, tta=…)`` then yields one prediction per path, PIL image or uint8 array.
    Notices (a model without a fitted temperature, a CPU fallback) go to the ``clfkit`` logger as warnings
    unless ``log`` (a function taking one line) is given."""
    from clfkit.runtime.engine import Engine

    options.setdefault("log", logging.getLogger("clfkit").warning)
    return Engine.from_onnx(path, **options)


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """The metrics of a training run folder (``RUN_DIR/metrics.json``) or of a ``clf-infer --report`` folder
    (``DIR/metrics.json``), as a dict.  No torch import."""
    path = Path(path)
    if path.is_file():
        target = path
    elif (path / "metrics.json").is_file():
        target = path / "metrics.json"
    elif path.is_dir():
        raise DataError(f"{path}: no metrics.json there; pass a clf-train run folder or a clf-infer --report folder")
    else:
        raise ConfigError(f"{path}: no such file or folder")
    try:
        return json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{target}: not a readable metrics file ({exc})") from None
