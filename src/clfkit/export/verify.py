"""Check an exported ONNX file against the PyTorch model it came from, on real images.

Both sides get the same pixels from the one preprocessing (:mod:`clfkit.preprocess`): PyTorch the normalized
float32 (N, 3, H, W) tensor, the runtime (onnxruntime, or OpenVINO in the precision clf-infer will run it in)
the same tensor, or for a ``uint8_nhwc`` graph the resized+cropped uint8 (N, H, W, 3) pixels it normalizes
itself.  Both run at several batch sizes, so a graph whose batch axis
is wrong, whose normalization differs or whose weights drifted is caught before anyone deploys it.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from clfkit.artifacts.onnx_meta import read_metadata
from clfkit.devices import machine_id
from clfkit.errors import ClfError, ModelError
from clfkit.io import file_sha256
from clfkit.runtime.registry import open_backend
from clfkit.spec import ModelSpec
from clfkit.vision.postprocess import softmax
from clfkit.vision.preprocess import normalize_batch, resize_crop

__all__ = ["BatchResult", "FORMAT_RULES", "FormatRule", "VerifyReport", "MIN_AGREEMENT", "NEAR_TIE",
           "compare_top1", "verify"]

# Pass criteria per precision.  fp32 must match PyTorch: every top-1 equal and |Δprob| <= atol.  Reduced
# precision changes numbers by design, so only top-1 agreement is gated, at a floor that still catches a
# broken conversion (a wrong scale, a saturated layer).  A flip on an image PyTorch itself nearly ties (its
# top two probabilities within NEAR_TIE) is rounding, not a broken graph: it does not count against the floor,
# whatever the number of images (with 8 verify photos one such flip is 87.5 %; a wrong scale flips confident
# images too).  The raw agreement is still what is recorded and what --precision auto ranks by.
SPEED_PASSES = 3  # timed passes over the verify images at the largest batch size; the fastest counts
MIN_AGREEMENT = {"fp32": 1.0, "bf16": 0.98, "fp16": 0.98, "int8": 0.90}
NEAR_TIE = 0.1  # PyTorch top-1 minus top-2 probability below which a reduced-precision flip is a near tie


@dataclass(frozen=True)
class FormatRule:
    """A pass criterion of one input format, applied on top of the precision's: the lower agreement floor and
    the larger |Δprob| bound of the two count."""

    min_agreement: float
    max_prob: float


# A uint8_image graph (--embed-preprocess full) resizes and crops the photo itself.  Its integer port of Pillow's
# resampler gives the host's pixels on onnxruntime, but a runtime computing its float64 parts in float32
# (OpenVINO, bicubic) may move a few pixels by a level or two, which changes probabilities by more than 1e-4.
FORMAT_RULES = {"uint8_image": FormatRule(min_agreement=0.995, max_prob=0.02)}


@dataclass
class BatchResult:
    batch_size: int
    images: int
    max_abs_logit: float
    max_abs_prob: float
    agree: int  # images whose top-1 class is the same in PyTorch and onnxruntime
    near_ties: int = 0  # of the other images, those PyTorch nearly ties (top-two probabilities within NEAR_TIE)

    @property
    def agreement(self) -> float:
        return self.agree / self.images if self.images else 1.0

    @property
    def agreement_off_ties(self) -> float:
        """Agreement with flips on near ties forgiven: what a reduced precision is gated on."""
        return (self.agree + self.near_ties) / self.images if self.images else 1.0


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
    # What ran it (``precision`` is what that runtime really computed in), on which file and machine, and how
    # fast: what --runtime/--precision auto reads back (clfkit.artifacts.verify_record).
    runtime: str = "onnxruntime"
    sha256: str = ""
    images_per_s: float | None = None  # model-only, the best of SPEED_PASSES passes at the largest batch size
    machine: str = ""

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
    def gated_agreement(self) -> float:
        """What the floor applies to: the agreement itself for fp32, with near-tie flips forgiven otherwise."""
        if self.checks_prob:
            return self.agreement
        return min((r.agreement_off_ties for r in self.rows), default=1.0)

    @property
    def passed(self) -> bool:
        if self.skipped:
            return True
        if not self.rows:
            return False
        ok = self.gated_agreement >= self.min_agreement
        return ok and (self.max_abs_prob <= self.atol if self.checks_prob else True)

    def criteria(self) -> str:
        text = f"top-1 agreement >= {100 * self.min_agreement:g}%"  # 100%, 99.5%, 98%
        if self.checks_prob:
            return text + f" and max|Δprob| <= {self.atol:g}"
        return text + f", flips on near ties (PyTorch top-2 within {NEAR_TIE:g}) forgiven"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["rows"] = [{**asdict(r), "agreement": r.agreement} for r in self.rows]
        data.update(max_abs_logit=self.max_abs_logit, max_abs_prob=self.max_abs_prob, agreement=self.agreement,
                    gated_agreement=self.gated_agreement, passed=self.passed, criteria=self.criteria())
        return data

    def format_table(self) -> str:
        speed = f", {self.images_per_s:.1f} img/s" if self.images_per_s else ""
        lines = [f"{Path(self.onnx_file).name} on {self.runtime} ({self.precision}, {self.input_format} input"
                 f"{speed}) vs PyTorch fp32 on {self.images} images from {self.source}",
                 f"{'batch':>6}  {'max|Δlogit|':>11}  {'max|Δprob|':>10}  top-1 agreement"]
        for r in self.rows:
            ties = f", {r.near_ties} flip(s) on near ties" if r.near_ties else ""
            lines.append(f"{r.batch_size:>6}  {r.max_abs_logit:>11.2e}  {r.max_abs_prob:>10.2e}  "
                         f"{r.agree}/{r.images} ({r.agreement:.1%}){ties}")
        if self.torch_accuracy is not None and self.onnx_accuracy is not None:
            delta = 100 * (self.onnx_accuracy - self.torch_accuracy)
            lines.append(f"accuracy on the labelled images: PyTorch {self.torch_accuracy:.1%}, "
                         f"ONNX {self.onnx_accuracy:.1%} ({delta:+.1f} points)")
        if self.note:
            lines.append(self.note)
        verdict = "NOT VERIFIED" if self.skipped else "PASS" if self.passed else "FAIL"
        lines.append(f"{verdict} (needs {self.criteria()})")
        return "\n".join(lines)


def compare_top1(reference: np.ndarray, logits: np.ndarray) -> tuple[int, int]:
    """(images whose top-1 matches ``reference``'s, flipped images that ``reference`` nearly ties): both (N, C)
    logits, ``reference`` from PyTorch fp32."""
    same = logits.argmax(1) == reference.argmax(1)
    probs = np.sort(softmax(reference).astype(np.float64), axis=1)
    gap = probs[:, -1] - probs[:, -2] if probs.shape[1] > 1 else np.ones(len(probs))
    return int(same.sum()), int((~same & (gap < NEAR_TIE)).sum())


def _chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def verify(model: torch.nn.Module, spec: ModelSpec, onnx_path: Path, images: Sequence[Image.Image], *,
           labels: Sequence[int] | None = None, batch_sizes: Sequence[int] = (1, 3, 16), atol: float = 1e-4,
           source: str = "given images", reference: dict[int, np.ndarray] | None = None,
           runtime: str = "onnxruntime", precision: str = "auto", threads: int | None = None) -> VerifyReport:
    """Run PyTorch (``model``, fp32) and ``runtime`` (``onnx_path`` on the CPU, in ``precision``; auto: the
    file's own) on the same images; compare, and time the best of SPEED_PASSES passes at the largest batch size.

    The ONNX file's own metadata says which input it takes and which precision it is, and that picks the
    pass criteria (:data:`MIN_AGREEMENT`; fp32 also needs max|Δprob| <= ``atol``; a ``uint8_image`` file,
    which gets each decoded photo as its own call, :data:`FORMAT_RULES` on top).  ``reference`` caches
    PyTorch logits per batch size across calls on the same images (fp32, int8 and fp16 of one export).
    """
    meta = read_metadata(onnx_path)
    if not images:
        raise ModelError(f"{onnx_path}: no images to verify with")
    pixels = np.stack([resize_crop(im, spec) for im in images])  # uint8 (N, H, W, 3)
    floats = normalize_batch(pixels, spec)  # float32 (N, 3, H, W): what PyTorch and a float32 graph get
    feed = pixels if meta.input_format == "uint8_nhwc" else floats
    # uint8_image: each decoded photo (1, H, W, 3) is its own call, so batch sizes other than 1 do not apply.
    photos = [np.asarray(im.convert("RGB"), np.uint8)[None] for im in images] \
        if meta.input_format == "uint8_image" else None
    if photos is not None:
        batch_sizes = [1]

    def run(size: int) -> list[np.ndarray]:
        if photos is not None:
            return [backend.run(photo) for photo in photos]
        return [backend.run(feed[part]) for part in _chunks(len(images), size)]
    report = VerifyReport(onnx_file=str(onnx_path), precision=meta.precision, input_format=meta.input_format,
                          source=source, images=len(images), atol=atol, min_agreement=MIN_AGREEMENT[meta.precision],
                          runtime=runtime, sha256=file_sha256(Path(onnx_path)), machine=machine_id())
    try:
        backend = open_backend(Path(onnx_path), runtime, "cpu", threads, log=lambda msg: None, precision=precision)
    except ClfError as exc:
        if meta.precision == "fp16":  # CPU runtimes lack fp16 kernels for most graphs: a GPU file
            report.note = (f"not run: {runtime} on this CPU cannot run this fp16 graph ({exc}); "
                           "verify it on the GPU runtime you deploy to")
            report.skipped = True
            return report
        raise
    report.precision = backend.precision  # what the runtime really computes in (bf16 on AMX, …)
    report.min_agreement = MIN_AGREEMENT[backend.precision]
    rule = FORMAT_RULES.get(meta.input_format)
    if rule is not None:
        report.min_agreement = min(report.min_agreement, rule.min_agreement)
        report.atol = max(atol, rule.max_prob)
    if photos is not None:
        report.note = "one photo per call (uint8_image input): batch sizes other than 1 do not apply"
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
        got = run(size)
        o = np.concatenate(got).astype(np.float32)
        if o.shape != t.shape:
            raise ModelError(f"{onnx_path}: ONNX output shape {o.shape} at batch {size}, PyTorch gives {t.shape}")
        agree, near_ties = compare_top1(t, o)
        report.rows.append(BatchResult(
            batch_size=size, images=len(images), max_abs_logit=float(np.abs(o - t).max()),
            max_abs_prob=float(np.abs(softmax(o).astype(np.float64) - softmax(t)).max()),
            agree=agree, near_ties=near_ties))
        if first_torch is None:
            first_torch, first_onnx = t, o
    if batch_sizes:  # the best of a few passes: what --runtime/--precision auto ranks the runs by
        largest, best = max(batch_sizes), float("inf")
        for _ in range(SPEED_PASSES):
            start = time.perf_counter()
            run(largest)
            best = min(best, time.perf_counter() - start)
        report.images_per_s = round(len(images) / best, 2)
    if labels is not None and first_torch is not None:
        y = np.asarray(labels)
        report.torch_accuracy = float((first_torch.argmax(1) == y).mean())
        report.onnx_accuracy = float((first_onnx.argmax(1) == y).mean())
    return report
