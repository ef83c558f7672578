"""The backends a benchmark compares, behind one small interface: a model-only call on a prepared batch, and a
timed pass over a folder of images (decode → preprocess → model → probabilities).

* ``pytorch fp32`` / ``pytorch bf16`` (CPU autocast) / ``pytorch fp16`` (CUDA AMP): :mod:`clfkit.bench.baseline`.
* ``onnxruntime <precision>``: :class:`clfkit.infer.Engine`, end to end through :meth:`Engine.predict` (decode
  threads overlapping the model), i.e. exactly what ``clf-infer`` runs.  On CUDA the model-only timing binds
  input and output to GPU memory (IO binding) so host↔device copies are not counted as model time.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from clfkit.errors import ImageError
from clfkit.preprocess import normalize_batch
from clfkit.spec import ModelSpec

__all__ = ["FolderRun", "Backend", "ort_backend", "torch_backend", "ort_folder_run"]

Call = Callable[[], Any]


@dataclass(frozen=True)
class FolderRun:
    """One pass over a folder: class probabilities (TTA average and view 0) and the wall time."""

    probs: np.ndarray  # float32 (N, C)
    probs_no_tta: np.ndarray  # float32 (N, C)
    seconds: float


@dataclass
class Backend:
    name: str  # "pytorch fp32", "onnxruntime int8", …
    kind: str  # "pytorch" or "onnxruntime"
    precision: str  # fp32 / bf16 / fp16 / int8
    file: Path  # the model file this backend loads (model.pt or .onnx)
    input_format: str = "float32_nchw"
    provider: str = ""  # what actually runs it: "CPUExecutionProvider", "torch cpu", …
    providers: list[str] = field(default_factory=list)  # onnxruntime's full active provider list
    handle: Any = None  # the Engine or TorchModel

    @property
    def is_baseline(self) -> bool:
        return self.kind == "pytorch" and self.precision == "fp32"

    def describe(self) -> dict[str, Any]:
        size = self.file.stat().st_size if self.file.is_file() else None
        return {"name": self.name, "kind": self.kind, "precision": self.precision, "file": str(self.file),
                "file_mb": round(size / 2**20, 3) if size is not None else None,
                "input_format": self.input_format, "provider": self.provider, "providers": self.providers}

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        """A zero-argument model call on ``views`` (uint8 (B, H, W, 3) crops, prepared here once, outside the
        timing) and the sync function to call after it (CUDA), or None."""
        if self.kind == "pytorch":
            import torch

            runner = self.handle
            batch = torch.from_numpy(normalize_batch(views, spec)).to(runner.device)
            return (lambda: runner(batch)), runner.sync_fn
        engine = self.handle
        prepared = engine.prepare(views)
        if engine.device == "cuda":
            return _iobinding_call(engine, prepared), None
        return (lambda: engine.run(prepared)), None

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        if self.kind == "pytorch":
            from clfkit.bench.baseline import torch_folder_run

            return torch_folder_run(self.handle, paths, spec, batch_size=batch_size, tta=tta,
                                    workers=loader_workers, seed=seed)
        return ort_folder_run(self.handle, paths, batch_size=batch_size, tta=tta, workers=decode_workers, seed=seed)


def _iobinding_call(engine: Any, prepared: np.ndarray) -> Call:
    """Model-only call on CUDA with input and output already in GPU memory.  ``run_with_iobinding`` returns
    after the CUDA stream has finished, so no extra synchronisation is needed."""
    import onnxruntime as ort

    session = engine.session
    binding = session.io_binding()
    device_input = ort.OrtValue.ortvalue_from_numpy(prepared, "cuda", 0)
    binding.bind_ortvalue_input(engine.input_name, device_input)
    binding.bind_output(engine.output_name, "cuda", 0)

    def call() -> None:
        session.run_with_iobinding(binding)

    call.keep_alive = device_input  # type: ignore[attr-defined]  # the bound buffer must outlive the binding
    return call


def ort_folder_run(engine: Any, paths: Sequence[Path], *, batch_size: int, tta: int, workers: int | None,
                   seed: int = 0) -> FolderRun:
    """One pass of :meth:`Engine.predict` over ``paths`` (what ``clf-infer`` does), timed like the baseline."""
    start = time.perf_counter()
    probs, probs0 = [], []
    for pred in engine.predict(paths, tta=tta, batch_size=batch_size, topk=1, workers=workers, keep_probs=True,
                               seed=seed):
        if not pred.ok:  # the images were all decoded once before timing, so this is a vanished file
            raise ImageError(pred.path, pred.error or "unreadable")
        probs.append(pred.probs)
        probs0.append(pred.probs_no_tta)
    seconds = time.perf_counter() - start
    num_classes = engine.spec.num_classes
    return FolderRun(probs=np.stack(probs) if probs else np.zeros((0, num_classes), np.float32),
                     probs_no_tta=np.stack(probs0) if probs0 else np.zeros((0, num_classes), np.float32),
                     seconds=seconds)


def torch_backend(model: Any, checkpoint: Path, precision: str, device: str) -> Backend:
    from clfkit.bench.baseline import TorchModel

    runner = TorchModel(model, precision, device)
    label = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 amp"}[precision]
    return Backend(name=f"pytorch {label}", kind="pytorch", precision=precision, file=Path(checkpoint),
                   provider=f"torch {device}", handle=runner)


def ort_backend(path: Path, device: str, threads: int, log: Callable[[str], None], taken: set[str]) -> Backend:
    from clfkit.infer.engine import Engine

    engine = Engine.from_onnx(path, device=device, threads=threads, log=log)
    name = f"onnxruntime {engine.precision}" + (" uint8-in" if engine.input_format == "uint8_nhwc" else "")
    base, n = name, 2
    while name in taken:  # two files of the same kind (e.g. two int8 recipes): keep both, numbered
        name = f"{base} #{n}"
        n += 1
    taken.add(name)
    return Backend(name=name, kind="onnxruntime", precision=engine.precision, file=Path(path),
                   input_format=engine.input_format, provider=engine.provider,
                   providers=list(engine.session.get_providers()), handle=engine)
