"""What a benchmark compares, behind one protocol: a model-only call on a prepared batch, a timed pass over a
folder of images (decode → preprocess → model → probabilities), and how to rebuild itself in a child process
for the memory probe.

* :class:`RuntimeBackend` — a clfkit :class:`~clfkit.runtime.engine.Engine` (any runtime), end to end through
  :meth:`Engine.predict` (decode threads overlapping the model), i.e. exactly what ``clf-infer`` runs.  On
  CUDA the model-only call keeps input and output in GPU memory (the runtime's ``model_call``).
* The PyTorch ways (eager fp32 — the baseline — and its autocast variants): :mod:`clfkit.bench.baseline`.
* The peers that are not clfkit (torch.compile, OpenVINO used directly): :mod:`clfkit.bench.peers`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np

from clfkit.artifacts.onnx_meta import META_PRECISION, read_props
from clfkit.errors import ImageError, ModelError
from clfkit.runtime.engine import Engine
from clfkit.spec import ModelSpec
from clfkit.vision.postprocess import mean_of_views, softmax

__all__ = ["FolderRun", "timed_folder_run", "BenchBackend", "RuntimeBackend", "describe_backend", "runtime_backend",
           "engine_folder_run",
           "folder_batches"]

Call = Callable[[], Any]


@dataclass(frozen=True)
class FolderRun:
    """One pass over a folder: class probabilities (TTA average and view 0) and the wall time."""

    probs: np.ndarray  # float32 (N, C)
    probs_no_tta: np.ndarray  # float32 (N, C)
    seconds: float


class BenchBackend(Protocol):
    name: str  # "pytorch fp32", "onnxruntime int8", …: the row label
    kind: str  # "pytorch", "pytorch-compiled", "runtime" or "openvino": how the memory probe rebuilds it
    precision: str  # fp32 / bf16 / fp16 / int8
    file: Path  # the model file it loads (model.pt or .onnx)
    input_format: str
    provider: str  # what actually runs it: "CPUExecutionProvider", "torch cpu", …

    def describe(self) -> dict[str, Any]: ...

    def prepare(self, batch_sizes: Sequence[int], spec: ModelSpec) -> None:
        """Get ready for calls at these batch sizes before anything is timed (torch.compile compiles here, and
        reports how long it took); a no-op for the others."""

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        """A zero-argument model call on ``views`` (uint8 (B, H, W, 3) crops, prepared here once, outside the
        timing) and the sync function to call after it (CUDA), or None."""

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun: ...

    def memory_job(self) -> dict[str, Any]:
        """What :mod:`clfkit.bench.memory` needs to load this backend again in a fresh process."""


def timed_folder_run(view_logits: Iterable[np.ndarray], views: int, num_classes: int, start: float,
                     temperature: float = 1.0) -> FolderRun:
    """Consume ``view_logits`` (one (B × V, C) logits array per batch, each image's V views adjacent) into a
    FolderRun: softmax per view with the spec's ``temperature`` (as the engine, so every row's probabilities
    mean the same), the TTA mean and view 0, timed from ``start`` to the last probability."""
    out, out0 = [], []
    for logits in view_logits:
        probs = softmax(logits, temperature=temperature).reshape(-1, views, num_classes)  # (B, V, C)
        out.append(mean_of_views(probs))
        out0.append(probs[:, 0])
    seconds = time.perf_counter() - start
    empty = np.zeros((0, num_classes), np.float32)
    return FolderRun(probs=np.concatenate(out) if out else empty,
                     probs_no_tta=np.concatenate(out0) if out0 else empty, seconds=seconds)


def describe_backend(backend: BenchBackend, **extra: Any) -> dict[str, Any]:
    size = backend.file.stat().st_size if backend.file.is_file() else None
    return {"name": backend.name, "kind": backend.kind, "precision": backend.precision, "file": str(backend.file),
            "file_mb": round(size / 2**20, 3) if size is not None else None,
            "input_format": backend.input_format, "provider": backend.provider, **extra}


def folder_batches(images: int, batch_size: int, views: int) -> set[int]:
    """The model batch sizes an end-to-end pass over ``images`` calls: full batches and the last partial one,
    times the TTA ``views`` per image."""
    sizes = {min(images, batch_size)} | ({images % batch_size} if images > batch_size else set())
    return {s * views for s in sizes if s > 0}


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
    default: bool = False  # what clf-infer runs with its default flags (--runtime/--precision auto)

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
        return describe_backend(self, runtime=self.engine.runtime, providers=list(self.engine.backend.providers),
                                precision_run=self.engine.precision_run, default=self.default,
                                chosen_by=self.engine.choice.reason if self.default else None)

    def prepare(self, batch_sizes: Sequence[int], spec: ModelSpec) -> None:
        """Nothing to do: the session was created for every batch size."""

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        return self.engine.backend.model_call(self.engine.prepare(views)), None

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        return engine_folder_run(self.engine, paths, batch_size=batch_size, tta=tta, workers=decode_workers,
                                 seed=seed)

    def memory_job(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.engine.path), "runtime": self.engine.runtime,
                "precision": self.engine.precision_run, "device": self.engine.device, "threads": self.threads}


def runtime_backend(path: Path, device: str, threads: int, log: Callable[[str], None], taken: set[str],
                    runtime: str = "onnxruntime", default: bool = False) -> RuntimeBackend:
    """Open exactly ``path`` with ``runtime`` in the file's own precision; the row is named after the runtime and
    the file's variant, numbered when two files of the same kind are compared.  ``default``: the row is what
    ``clf-infer`` runs with its default flags (``--runtime auto --precision auto``: maybe another runtime, or a
    verified variant beside ``path``), and says so in its name."""
    if default:
        engine = Engine.from_onnx(path, device=device, threads=threads, log=log)
    else:
        try:
            own = read_props(path).get(META_PRECISION, "fp32")
        except ModelError:
            own = "auto"  # not a readable ONNX file: Engine.from_onnx below says so in one line
        engine = Engine.from_onnx(path, device=device, threads=threads, runtime=runtime, precision=own, log=log)
    name = f"{engine.runtime} {engine.precision}" + (" uint8-in" if engine.input_format == "uint8_nhwc" else "")
    if default:
        name = f"clfkit default ({name})"
    base, n = name, 2
    while name in taken:  # two files of the same kind (e.g. two int8 recipes): keep both, numbered
        name = f"{base} #{n}"
        n += 1
    taken.add(name)
    return RuntimeBackend(name=name, engine=engine, file=Path(path), threads=threads, default=default)
