"""The export's verification record, ``<model>.verify.json``: file names, and reading back what was verified.
No torch import.

``clf-export`` writes the record (:mod:`clfkit.export.api`); the runtime layer reads it to decide what
``--runtime auto --precision auto`` may run (:mod:`clfkit.runtime.select`): a reduced precision or a
variant file is only ever chosen because this record shows it agreed with the trained model on real photos,
on the same runtime, and was measured faster on the same kind of machine.

Each verified run is one entry of ``reports`` with, besides the comparison table, the keys read here::

    {"onnx_file", "sha256", "runtime", "precision", "passed", "agreement", "max_abs_prob",
     "torch_accuracy", "onnx_accuracy", "images_per_s", "machine"}
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

__all__ = ["VARIANT_TAGS", "RuntimeCheck", "variant_path", "base_model_path", "verify_json_path", "read_checks",
           "check_from_dict"]

VARIANT_TAGS = ("int8", "fp16", "full")  # model.onnx → model.int8.onnx, … (written beside the fp32 file)


def _stem(path: Path) -> str:
    return path.name[: -len(".onnx")] if path.name.lower().endswith(".onnx") else path.name


def variant_path(out: Path, tag: str) -> Path:
    """``model.onnx`` → ``model.<tag>.onnx`` beside it."""
    out = Path(out)
    return out.with_name(f"{_stem(out)}.{tag}.onnx")


def base_model_path(path: Path) -> Path:
    """The fp32 file a variant was derived from: ``model.int8.onnx`` → ``model.onnx`` (a plain file: itself)."""
    path = Path(path)
    stem = _stem(path)
    for tag in VARIANT_TAGS:
        if stem.endswith(f".{tag}"):
            return path.with_name(f"{stem[: -len(tag) - 1]}.onnx")
    return path


def verify_json_path(out: Path) -> Path:
    """``model.onnx`` → ``model.verify.json``."""
    out = Path(out)
    return out.with_name(f"{_stem(out)}.verify.json")


@dataclass(frozen=True)
class RuntimeCheck:
    """One file verified on one runtime in one precision against PyTorch fp32."""

    file: Path  # resolved beside the record
    sha256: str
    runtime: str
    precision: str  # what the runtime really computed in
    passed: bool
    agreement: float  # top-1 agreement with PyTorch fp32 (worst batch size)
    max_abs_prob: float
    torch_accuracy: float | None
    onnx_accuracy: float | None
    images_per_s: float | None  # model-only throughput measured during verification
    machine: str  # devices.machine_id() of the machine that measured it

    @property
    def accuracy_drop(self) -> float:
        """Points of accuracy lost against PyTorch on the labelled verify images (0 when unlabelled)."""
        if self.torch_accuracy is None or self.onnx_accuracy is None:
            return 0.0
        return self.torch_accuracy - self.onnx_accuracy


def check_from_dict(data: Mapping[str, Any], folder: Path, machine: str = "") -> RuntimeCheck | None:
    """A report entry → RuntimeCheck; None for entries written before runtimes were recorded."""
    try:
        return RuntimeCheck(
            file=folder / Path(str(data["onnx_file"])).name, sha256=str(data["sha256"]),
            runtime=str(data["runtime"]), precision=str(data["precision"]), passed=bool(data["passed"]),
            agreement=float(data["agreement"]), max_abs_prob=float(data["max_abs_prob"]),
            torch_accuracy=_float(data.get("torch_accuracy")), onnx_accuracy=_float(data.get("onnx_accuracy")),
            images_per_s=_float(data.get("images_per_s")), machine=str(data.get("machine") or machine))
    except (KeyError, TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def read_checks(model: Path) -> list[RuntimeCheck]:
    """Every verified run recorded beside ``model`` (or beside the fp32 file it is a variant of); [] when there is
    no record or it cannot be read (an old or hand-edited file never stops inference: it only means "not
    verified", and the plain fp32 path runs)."""
    record = verify_json_path(base_model_path(Path(model)))
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or not isinstance(data.get("reports"), list):
        return []
    folder = record.parent
    checks = [check_from_dict(r, folder, str(data.get("machine", ""))) for r in data["reports"] if isinstance(r, dict)]
    return [c for c in checks if c is not None]
