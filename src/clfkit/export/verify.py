"""Check an exported ONNX file against the PyTorch model it came from, on real images.

Both sides get the same pixels from the one preprocessing (:mod:`clfkit.preprocess`): PyTorch the normalized
float32 (N, 3, H, W) tensor, onnxruntime the same tensor, or for a ``uint8_nhwc`` graph the resized+cropped
uint8 (N, H, W, 3) pixels it normalizes itself.  Both run at several batch sizes, so a graph whose batch axis
is wrong, whose normalization differs or whose weights drifted is caught before anyone deploys it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from clfkit.artifacts.onnx_meta import INPUT_NAME, read_metadata
from clfkit.errors import ModelError
from clfkit.spec import ModelSpec
from clfkit.vision.postprocess import softmax
from clfkit.vision.preprocess import normalize_batch, resize_crop

__all__ = ["BatchResult", "VerifyReport", "MIN_AGREEMENT", "verify"]

# Pass criteria per precision.  fp32 must match PyTorch: every top-1 equal and |Δprob| <= atol.  Reduced
# precision changes numbers by design, so only top-1 agreement is gated, at a floor that still catches a
# broken conversion (a wrong scale, a saturated layer) while allowing near-tied images to flip.
MIN_AGREEMENT = {"fp32": 1.0, "fp16": 0.98, "int8": 0.90}


@dataclass
class BatchResult:
    batch_size: int
    images: int
    max_abs_logit: float
    max_abs_prob: float
    agree: int  # images whose top-1 class is the same in PyTorch and onnxruntime

    @property
    def agreement(self) -> float:
        return self.agree / self.images if self.images else 1.0


@dataclass
class VerifyReport:
    onnx_file: str
    precision: str
    input_format: str
    source: str  # where the images came from
    images: int
    atol: float
    min_agreement: float
    rows: list[BatchResult] = field(default_factory=list)
    torch_accuracy: float | None = None  # top-1 against folder labels, when the images have them
    onnx_accuracy: float | None = None
    note: str = ""
    skipped: bool = False  # the CPU runtime cannot run this graph (fp16 without CPU kernels): not verified here

    @property
    def max_abs_logit(self) -> float:
        return max((r.max_abs_logit for r in self.rows), default=0.0)

    @property
    def max_abs_prob(self) -> float:
        return max((r.max_abs_prob for r in self.rows), default=0.0)

    @property
    def agreement(self) -> float:
        return min((r.agreement for r in self.rows), default=1.0)

    @property
    def checks_prob(self) -> bool:
        return self.precision == "fp32"

    @property
    def passed(self) -> bool:
        if self.skipped:
            return True
        if not self.rows:
            return False
        ok = self.agreement >= self.min_agreement
        return ok and (self.max_abs_prob <= self.atol if self.checks_prob else True)

    def criteria(self) -> str:
        text = f"top-1 agreement >= {self.min_agreement:.0%}"
        return text + (f" and max|Δprob| <= {self.atol:g}" if self.checks_prob else "")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [{**asdict(r), "agreement": r.agreement} for r in self.rows]
        data.update(max_abs_logit=self.max_abs_logit, max_abs_prob=self.max_abs_prob, agreement=self.agreement,
                    passed=self.passed, criteria=self.criteria())
        return data

    def format_table(self) -> str:
        lines = [f"{Path(self.onnx_file).name} ({self.precision}, {self.input_format} input) vs PyTorch fp32 "
                 f"on {self.images} images from {self.source}",
                 f"{'batch':>6}  {'max|Δlogit|':>11}  {'max|Δprob|':>10}  top-1 agreement"]
        for r in self.rows:
            lines.append(f"{r.batch_size:>6}  {r.max_abs_logit:>11.2e}  {r.max_abs_prob:>10.2e}  "
                         f"{r.agree}/{r.images} ({r.agreement:.1%})")
        if self.torch_accuracy is not None and self.onnx_accuracy is not None:
            delta = 100 * (self.onnx_accuracy - self.torch_accuracy)
            lines.append(f"accuracy on the labelled images: PyTorch {self.torch_accuracy:.1%}, "
                         f"ONNX {self.onnx_accuracy:.1%} ({delta:+.1f} points)")
        if self.note:
            lines.append(self.note)
        verdict = "NOT VERIFIED" if self.skipped else "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict} (needs {self.criteria()})")
        return "\n".join(lines)


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initializers and the like on stderr
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def verify(model: torch.nn.Module, spec: ModelSpec, onnx_path: Path, images: Sequence[Image.Image], *,
           labels: Sequence[int] | None = None, batch_sizes: Sequence[int] = (1, 3, 16), atol: float = 1e-4,
           source: str = "given images", reference: dict[int, np.ndarray] | None = None) -> VerifyReport:
    """Run PyTorch (``model``, fp32) and onnxruntime (``onnx_path``) on the same images; compare.

    The ONNX file's own metadata says which input it takes and which precision it is, and that picks the
    pass criteria (:data:`MIN_AGREEMENT`; fp32 also needs max|Δprob| <= ``atol``).  ``reference`` caches
    PyTorch logits per batch size across calls on the same images (fp32, int8 and fp16 of one export).
    """
    meta = read_metadata(onnx_path)
    if not images:
        raise ModelError(f"{onnx_path}: no images to verify with")
    pixels = np.stack([resize_crop(im, spec) for im in images])  # uint8 (N, H, W, 3)
    floats = normalize_batch(pixels, spec)  # float32 (N, 3, H, W): what PyTorch and a float32 graph get
    feed = pixels if meta.input_format == "uint8_nhwc" else floats
    report = VerifyReport(onnx_file=str(onnx_path), precision=meta.precision, input_format=meta.input_format,
                          source=source, images=len(images), atol=atol, min_agreement=MIN_AGREEMENT[meta.precision])
    try:
        session = _session(Path(onnx_path))
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        if meta.precision == "fp16" and "NOT_IMPLEMENTED" in str(exc):
            report.note = ("not run: this CPU onnxruntime has no fp16 kernels for this graph; "
                           "verify it on the GPU runtime you deploy to")
            report.skipped = True
            return report
        raise ModelError(f"{onnx_path}: onnxruntime cannot load it: {str(exc)[:300]}") from None
    model = model.to("cpu", torch.float32).eval()
    first_torch = first_onnx = None
    for size in batch_sizes:
        if reference is not None and size in reference:
            t = reference[size]
        else:
            with torch.no_grad():
                t = np.concatenate([model(torch.from_numpy(floats[part])).numpy()
                                    for part in _chunks(len(images), size)])
            if reference is not None:
                reference[size] = t
        got = [session.run(None, {INPUT_NAME: feed[part]})[0] for part in _chunks(len(images), size)]
        o = np.concatenate(got).astype(np.float32)
        if o.shape != t.shape:
            raise ModelError(f"{onnx_path}: ONNX output shape {o.shape} at batch {size}, PyTorch gives {t.shape}")
        report.rows.append(BatchResult(
            batch_size=size, images=len(images), max_abs_logit=float(np.abs(o - t).max()),
            max_abs_prob=float(np.abs(softmax(o).astype(np.float64) - softmax(t)).max()),
            agree=int((o.argmax(1) == t.argmax(1)).sum())))
        if first_torch is None:
            first_torch, first_onnx = t, o
    if labels is not None and first_torch is not None:
        y = np.asarray(labels)
        report.torch_accuracy = float((first_torch.argmax(1) == y).mean())
        report.onnx_accuracy = float((first_onnx.argmax(1) == y).mean())
    return report
