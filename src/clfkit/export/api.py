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

from clfkit.artifacts.verify_record import variant_path, verify_json_path
from clfkit.data.layout import ImageSet, find_split, list_images, load_images
from clfkit.data.synthetic import generated_images
from clfkit.errors import CheckpointError, ConfigError, printable
from clfkit.export.full_preprocess import FULL_MIN_OPSET
from clfkit.export.graph import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, embed_mode, export_model
from clfkit.export.quantize import convert_fp16, quantize_int8
from clfkit.export.verify import VerifyReport, verify
from clfkit.devices import machine_id
from clfkit.io import check_writable, write_json
from clfkit.models.classifier import LoadedCheckpoint, load_checkpoint
from clfkit.runtime.backend_openvino import default_precision as openvino_default_precision
from clfkit.runtime.registry import runtime_missing
from clfkit.runtime.select import choose
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
    default_run: str = ""  # what clf-infer's --runtime/--precision auto will run on this machine, and why
    dropped: dict[str, str] = field(default_factory=dict)  # file name → why it was deleted after verification

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def failed(self) -> list[VerifyReport]:
        """Failed reports of the files that were kept (a dropped default int8 file does not fail the export)."""
        return [r for r in self.reports if not r.passed and Path(r.onnx_file).name not in self.dropped]


def verify_runtimes(precision: str, embed: str | None = None) -> list[tuple[str, str]]:
    """(runtime, precision) pairs a file of ``precision`` is verified on: onnxruntime as written, and OpenVINO
    (where installed) in what it computes by default on this CPU — bf16 where AMX exists — because
    ``--runtime/--precision auto`` may only run what was verified here (:mod:`clfkit.runtime.select`).  The
    ``full`` graph stays fp32 on OpenVINO: its exact integer resize would be rounded by bf16 matrix products."""
    pairs = [("onnxruntime", "auto")]
    if precision != "fp16" and runtime_missing("openvino") is None:
        ov = "int8" if precision == "int8" else "fp32" if embed == "full" else openvino_default_precision()
        pairs.append(("openvino", ov))
    return pairs


def _check_options(out: Path, opset: int, atol: float, int8: bool | None, calibration: Path | None) -> None:
    if not out.name.lower().endswith(".onnx"):
        raise ConfigError(f"OUT {out} must end in .onnx (variants are written beside it as .int8.onnx, .fp16.onnx)")
    if out.is_dir():
        raise ConfigError(f"OUT {out} is a folder; give a file name such as {out / 'model.onnx'}")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} "
                          f"(default {DEFAULT_OPSET})")
    if not (atol > 0 and math.isfinite(atol)):
        raise ConfigError(f"--atol must be a positive number, got {atol}")
    if calibration is not None and int8 is False:
        raise ConfigError("`--calibration` only applies to the int8 file, and --no-int8 is set. Drop one of them.")
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


def _calibration_files(loaded: LoadedCheckpoint, checkpoint: Path, calibration: Path | None,
                       required: bool = True) -> list[Path]:
    """Up to CALIBRATION_IMAGES photos: ``calibration``, else the run's train split; [] when neither exists and
    the int8 file was not asked for (``required=False``: the default export makes one where it can)."""
    folder = calibration if calibration is not None else find_split(loaded.config, checkpoint, "train")
    if folder is None and not required:
        return []
    if folder is None:
        raise ConfigError("--int8 needs calibration photos and the run's train split was not found; "
                          "pass --calibration DIR (a few hundred photos like the ones the model will see)")
    files = [p for p, _ in list_images(Path(folder), CALIBRATION_IMAGES)]
    if not files:
        raise ConfigError(f"--calibration {folder}: no images found there")
    return files


def export_checkpoint(checkpoint: Path, out: Path, *, opset: int = DEFAULT_OPSET, verify_dir: Path | None = None,
                      atol: float = 1e-4, int8: bool | None = None, calibration: Path | None = None,
                      fp16: bool = False,
                      embed_preprocess: bool | str | None = None, batch_sizes: tuple[int, ...] = BATCH_SIZES,
                      log: Callable[[str], None] = lambda msg: None) -> ExportResult:
    """Export ``checkpoint`` (a clf-train model.pt) to ``out`` and verify it (and its variants) on images.

    Always writes ``out`` (fp32) and ``<out stem>.verify.json``; ``int8``/``fp16`` add ``<stem>.int8.onnx`` /
    ``<stem>.fp16.onnx``.  ``int8`` None (the default) writes the int8 file wherever calibration photos are found
    (the run's train split or ``calibration``), because clf-infer's ``--precision auto`` runs it where its
    verification shows it agrees with PyTorch (>= 99 %) and is faster; True requires it, False skips it.
    Verification results are returned, not raised: check ``result.passed``.
    ``embed_preprocess``: None (float32 input), "pixels" (uint8 crops; True means this too) or "full" (the photo).
    """
    out = Path(out)
    _check_options(out, opset, atol, int8, calibration)
    embed = embed_mode(embed_preprocess)
    if embed == "full" and int8 is None:
        int8 = False  # the exact in-graph resize cannot be quantized (see below); not asked for, so not made
    if embed == "full" and (int8 or fp16):
        raise ConfigError("--embed-preprocess full cannot be combined with --int8 or --fp16: converting its exact "
                          "in-graph resize would change its pixels. Export those variants without it.")
    loaded = _load(Path(checkpoint))
    spec = loaded.spec
    check_writable(out.parent, str(out))  # fail in a second, not after a minute of export
    images = _verify_images(loaded, Path(checkpoint), verify_dir)
    for line in images.skipped:  # "path: reason"; a name with a newline must not break the line
        log(f"skipped unreadable verify image {printable(line)}")
    calib = _calibration_files(loaded, Path(checkpoint), calibration, required=bool(int8)) \
        if int8 is not False else []
    if int8 is None and not calib:
        log("no int8 file: no calibration photos (the run's train split was not found; pass --calibration DIR)")

    log(f"exporting {spec.backbone or loaded.arch.get('backbone')} ({spec.num_classes} classes, "
        f"{spec.input_size} px) to {out}")
    if embed == "full" and opset < FULL_MIN_OPSET:
        log(f"--embed-preprocess full: writing opset {FULL_MIN_OPSET} (its resampling needs it; --opset {opset})")
    result = ExportResult(files={"fp32": export_model(loaded.model, spec, out, opset=opset,
                                                      embed_preprocess=embed)},
                          image_source=images.source)
    if calib:
        log(f"quantizing to int8 with {len(calib)} calibration images")
        result.files["int8"] = quantize_int8(out, variant_path(out, "int8"), calib, spec, log=log)
    if fp16:
        log("converting to fp16 (inputs and outputs stay float32)")
        result.files["fp16"] = convert_fp16(out, variant_path(out, "fp16"), spec)

    reference: dict[int, np.ndarray] = {}
    for precision, path in result.files.items():
        for runtime, run_precision in verify_runtimes(precision, embed):
            log(f"verifying {path.name} on {runtime} ({run_precision}) on {len(images.images)} images")
            result.reports.append(verify(loaded.model, spec, path, images.images, labels=images.labels,
                                         batch_sizes=batch_sizes, atol=atol, source=images.source,
                                         reference=reference, runtime=runtime, precision=run_precision))
    if int8 is None and "int8" in result.files:
        _drop_failed(result, "int8", log)
    result.verify_json = _write_report(result, checkpoint, out, images, batch_sizes)
    result.default_run = choose(out, device="cpu").reason
    return result


def _drop_failed(result: ExportResult, precision: str, log: Callable[[str], None]) -> None:
    """Delete a variant the user did not ask for when it failed verification: a file on disk that disagrees
    with the trained model is one somebody will deploy.  Its reports stay in the record, saying why."""
    path = result.files[precision]
    bad = [r for r in result.reports if Path(r.onnx_file) == path and not r.passed]
    if not bad:
        return
    why = (f"failed verification on {', '.join(r.runtime for r in bad)} ({bad[0].gated_agreement:.1%} top-1 agreement, "
           f"needs {bad[0].min_agreement:.0%}); not kept")
    path.unlink(missing_ok=True)
    del result.files[precision]
    result.dropped[path.name] = why
    log(f"{path.name} {why}")


def _write_report(result: ExportResult, checkpoint: Path, out: Path, images: ImageSet,
                  batch_sizes: tuple[int, ...]) -> Path:
    path = verify_json_path(out)
    data = {
        "clfkit_version": __version__,
        "checkpoint": str(checkpoint),
        "passed": result.passed,
        "dropped": result.dropped,
        "machine": machine_id(),
        "images": {"source": images.source, "count": len(images.images), "files": images.files,
                   "skipped": images.skipped},
        "batch_sizes": list(batch_sizes),
        "reports": [r.to_dict() for r in result.reports],
    }
    return write_json(data, path)
