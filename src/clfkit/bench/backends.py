"""What a benchmark compares, behind one protocol: a model-only call on a prepared batch, a timed pass over a
folder of images (decode → preprocess → model → probabilities), and how to rebuild itself in a child process
for the memory probe.

* :class:`RuntimeBackend` — a clfkit :class:`~clfkit.runtime.engine.Engine` (any runtime), end to end through
  :meth:`Engine.predict` (decode threads overlapping the model), i.e. exactly what ``clf-infer`` runs.  On
  CUDA the model-only call keeps input and output in GPU memory (the runtime's ``model_call``).
* The PyTorch ways (eager fp32 — the baseline — and its autocast variants): :mod:`clfkit.bench.baseline`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from clfkit.errors import ImageError
from clfkit.runtime.engine import Engine
from clfkit.spec import ModelSpec

__all__ = ["FolderRun", "BenchBackend", "RuntimeBackend", "describe_backend", "runtime_backend", "engine_folder_run"]

Call = Callable[[], Any]


@dataclass(frozen=True)
class FolderRun:
    """One pass over a folder: class probabilities (TTA average and view 0) and the wall time."""

    probs: np.ndarray  # float32 (N, C)
    probs_no_tta: np.ndarray  # float32 (N, C)
    seconds: float


class BenchBackend(Protocol):
    name: str  # "pytorch fp32", "onnxruntime int8", …: the row label
    kind: str  # "pytorch" or "runtime": how the memory probe rebuilds it
    precision: str  # fp32 / bf16 / fp16 / int8
    file: Path  # the model file it loads (model.pt or .onnx)
    input_format: str
    provider: str  # what actually runs it: "CPUExecutionProvider", "torch cpu", …

    def describe(self) -> dict[str, Any]: ...

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        """A zero-argument model call on ``views`` (uint8 (B, H, W, 3) crops, prepared here once, outside the
        timing) and the sync function to call after it (CUDA), or None."""

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun: ...

    def memory_job(self) -> dict[str, Any]:
        """What :mod:`clfkit.bench.memory` needs to load this backend again in a fresh process."""


def describe_backend(backend: BenchBackend, **extra: Any) -> dict[str, Any]:
    size = backend.file.stat().st_size if backend.file.is_file() else None
    return {"name": backend.name, "kind": backend.kind, "precision": backend.precision, "file": str(backend.file),
            "file_mb": round(size / 2**20, 3) if size is not None else None,
            "input_format": backend.input_format, "provider": backend.provider, **extra}


def engine_folder_run(engine: Engine, paths: Sequence[Path], *, batch_size: int, tta: int, workers: int | None,
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


@dataclass
class RuntimeBackend:
    """A clfkit runtime running an exported file, as ``clf-infer`` runs it."""

    name: str
    engine: Engine
    file: Path
    threads: int
    kind: str = "runtime"

    @property
    def precision(self) -> str:
        return self.engine.precision

    @property
    def input_format(self) -> str:
        return self.engine.input_format

    @property
    def provider(self) -> str:
        return self.engine.provider

    def describe(self) -> dict[str, Any]:
        return describe_backend(self, runtime=self.engine.runtime, providers=list(self.engine.backend.providers))

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        return self.engine.backend.model_call(self.engine.prepare(views)), None

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        return engine_folder_run(self.engine, paths, batch_size=batch_size, tta=tta, workers=decode_workers,
                                 seed=seed)

    def memory_job(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.file), "runtime": self.engine.runtime,
                "device": self.engine.device, "threads": self.threads}


def runtime_backend(path: Path, device: str, threads: int, log: Callable[[str], None], taken: set[str],
                    runtime: str = "onnxruntime") -> RuntimeBackend:
    """Open ``path`` with ``runtime``; the row is named after the runtime and the file's variant, numbered when
    two files of the same kind are compared."""
    engine = Engine.from_onnx(path, device=device, threads=threads, runtime=runtime, log=log)
    name = f"{engine.runtime} {engine.precision}" + (" uint8-in" if engine.input_format == "uint8_nhwc" else "")
    base, n = name, 2
    while name in taken:  # two files of the same kind (e.g. two int8 recipes): keep both, numbered
        name = f"{base} #{n}"
        n += 1
    taken.add(name)
    return RuntimeBackend(name=name, engine=engine, file=Path(path), threads=threads)
