"""export_checkpoint: a clf-train ``model.pt`` → verified ONNX file(s) + ``<out>.verify.json``.

One function behind ``clf-export``.  The spec comes from the checkpoint only (no size/mean flags), the fp32
graph is always written and verified, and the int8/fp16 variants are derived from that fp32 file.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from clfkit.data.layout import ImageSet, find_split, list_images, load_images
from clfkit.data.synthetic import generated_images
from clfkit.errors import CheckpointError, ConfigError, printable
from clfkit.export.graph import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, export_model
from clfkit.export.quantize import convert_fp16, quantize_int8, variant_path
from clfkit.export.verify import VerifyReport, verify
from clfkit.io import check_writable, write_json
from clfkit.models.classifier import LoadedCheckpoint, load_checkpoint
from clfkit.version import __version__

__all__ = ["ExportResult", "export_checkpoint", "verify_json_path", "VERIFY_IMAGES", "CALIBRATION_IMAGES",
           "BATCH_SIZES"]

VERIFY_IMAGES = 64  # images from the verify folder / validation split
CALIBRATION_IMAGES = 256  # int8 calibration images (MinMax ranges settle well before this)
BATCH_SIZES = (1, 3, 16)


@dataclass
class ExportResult:
    files: dict[str, Path]  # precision ("fp32", "int8", "fp16") → ONNX file
    reports: list[VerifyReport] = field(default_factory=list)
    verify_json: Path | None = None
    image_source: str = ""

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.reports)

    @property
    def failed(self) -> list[VerifyReport]:
        return [r for r in self.reports if not r.passed]


def verify_json_path(out: Path) -> Path:
    """``model.onnx`` → ``model.verify.json``."""
    out = Path(out)
    stem = out.name[: -len(".onnx")] if out.name.lower().endswith(".onnx") else out.name
    return out.with_name(f"{stem}.verify.json")


def _check_options(out: Path, opset: int, atol: float, int8: bool, calibration: Path | None) -> None:
    if not out.name.lower().endswith(".onnx"):
        raise ConfigError(f"OUT {out} must end in .onnx (variants are written beside it as .int8.onnx, .fp16.onnx)")
    if out.is_dir():
        raise ConfigError(f"OUT {out} is a folder; give a file name such as {out / 'model.onnx'}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
                          f"(default {DEFAULT_OPSET})")
    if not (atol > 0 and math.isfinite(atol)):
        raise ConfigError(f"--atol must be a positive number, got {atol}")
    if calibration is not None and not int8:
        raise ConfigError("`--calibration` only applies to `--int8`. Add --int8 or drop --calibration.")
    if calibration is not None and not Path(calibration).is_dir():
        raise ConfigError(f"--calibration {calibration}: folder not found")


def _load(checkpoint: Path) -> LoadedCheckpoint:
    loaded = load_checkpoint(checkpoint)
    spec = loaded.spec
    with torch.no_grad():  # the head's width is what the graph will output: it must match the class names
        probe = loaded.model(torch.zeros(1, 3, spec.input_size, spec.input_size))
    if tuple(probe.shape) != (1, spec.num_classes):
        raise CheckpointError(f"{checkpoint}: the model outputs {tuple(probe.shape[1:])} values per image but the "
                              f"spec names {spec.num_classes} classes; refusing to export mismatched labels")
    return loaded


def _verify_images(loaded: LoadedCheckpoint, checkpoint: Path, verify_dir: Path | None) -> ImageSet:
    names = loaded.spec.class_names
    if verify_dir is not None:
        if not Path(verify_dir).is_dir():
            raise ConfigError(f"--verify {verify_dir}: folder not found")
        found = load_images(Path(verify_dir), VERIFY_IMAGES, names)
        if not found.images:
            raise ConfigError(f"--verify {verify_dir}: no readable images found there")
        return found
    val = find_split(loaded.config, checkpoint, "val")
    if val is not None:
        found = load_images(val, VERIFY_IMAGES, names)
        if found.images:
            return found
    return generated_images(32)


def _calibration_files(loaded: LoadedCheckpoint, checkpoint: Path, calibration: Path | None) -> list[Path]:
    folder = calibration if calibration is not None else find_split(loaded.config, checkpoint, "train")
    if folder is None:
        raise ConfigError("--int8 needs calibration photos and the run's train split was not found; "
                          "pass --calibration DIR (a few hundred photos like the ones the model will see)")
    files = [p for p, _ in list_images(Path(folder), CALIBRATION_IMAGES)]
    if not files:
        raise ConfigError(f"--calibration {folder}: no images found there")
    return files


def export_checkpoint(checkpoint: Path, out: Path, *, opset: int = DEFAULT_OPSET, verify_dir: Path | None = None,
                      atol: float = 1e-4, int8: bool = False, calibration: Path | None = None, fp16: bool = False,
                      embed_preprocess: bool = False, batch_sizes: tuple[int, ...] = BATCH_SIZES,
                      log: Callable[[str], None] = lambda msg: None) -> ExportResult:
    """Export ``checkpoint`` (a clf-train model.pt) to ``out`` and verify it (and its variants) on images.

    Always writes ``out`` (fp32) and ``<out stem>.verify.json``; ``int8``/``fp16`` add ``<stem>.int8.onnx`` /
    ``<stem>.fp16.onnx``.  Verification results are returned, not raised: check ``result.passed``.
    """
    out = Path(out)
    _check_options(out, opset, atol, int8, calibration)
    loaded = _load(Path(checkpoint))
    spec = loaded.spec
    check_writable(out.parent, str(out))  # fail in a second, not after a minute of export
    images = _verify_images(loaded, Path(checkpoint), verify_dir)
    for line in images.skipped:  # "path: reason"; a name with a newline must not break the line
        log(f"skipped unreadable verify image {printable(line)}")
    calib = _calibration_files(loaded, Path(checkpoint), calibration) if int8 else []

    log(f"exporting {spec.backbone or loaded.arch.get('backbone')} ({spec.num_classes} classes, "
        f"{spec.input_size} px) to {out}")
    result = ExportResult(files={"fp32": export_model(loaded.model, spec, out, opset=opset,
                                                      embed_preprocess=embed_preprocess)},
                          image_source=images.source)
    if int8:
        log(f"quantizing to int8 with {len(calib)} calibration images")
        result.files["int8"] = quantize_int8(out, variant_path(out, "int8"), calib, spec, log=log)
    if fp16:
        log("converting to fp16 (inputs and outputs stay float32)")
        result.files["fp16"] = convert_fp16(out, variant_path(out, "fp16"), spec)

    reference: dict[int, np.ndarray] = {}
    for precision, path in result.files.items():
        log(f"verifying {path.name} on {len(images.images)} images")
        result.reports.append(verify(loaded.model, spec, path, images.images, labels=images.labels,
                                     batch_sizes=batch_sizes, atol=atol, source=images.source,
                                     reference=reference))
    result.verify_json = _write_report(result, checkpoint, out, images, batch_sizes)
    return result


def _write_report(result: ExportResult, checkpoint: Path, out: Path, images: ImageSet,
                  batch_sizes: tuple[int, ...]) -> Path:
    path = verify_json_path(out)
    data = {
        "clfkit_version": __version__,
        "checkpoint": str(checkpoint),
        "passed": result.passed,
        "images": {"source": images.source, "count": len(images.images), "files": images.files,
                   "skipped": images.skipped},
        "batch_sizes": list(batch_sizes),
        "reports": [r.to_dict() for r in result.reports],
    }
    return write_json(data, path)
