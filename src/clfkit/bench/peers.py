"""Peers: the strongest ways of running the model that are not clfkit, measured beside it in the same run.

* ``torch-compile`` — "PyTorch best": :mod:`clfkit.bench.compiled` (torch.compile, channels_last, native
  lower precision).  torch is imported only when that peer runs.
* ``openvino`` — OpenVINO used directly, as an Intel-CPU user would write it without clfkit::

      compiled = openvino.Core().compile_model(core.read_model("model.onnx"), "CPU", {"INFERENCE_NUM_THREADS": n})

  Two rows: ``openvino default`` (OpenVINO picks the precision: bf16 on CPUs with native bf16 such as AMX, f32
  on others) and ``openvino fp32`` (``INFERENCE_PRECISION_HINT=f32``); both are shown even when they are the same
  on a CPU, and each records the precision the compiled model really uses.  Model-only runs the same prepared
  float32 batch as every backend; end to end is the obvious loop: clfkit's decode + preprocess a batch at a time,
  then the model.

This module is torch-free: an OpenVINO memory probe imports openvino and clfkit.vision only.
"""
from __future__ import annotations

import difflib
import importlib.util
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence, TypeVar

import numpy as np

from clfkit.bench.backends import Call, FolderRun, describe_backend, timed_folder_run
from clfkit.errors import ClfError, ConfigError, first_line
from clfkit.runtime.backend_openvino import compiled_precision
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch, preprocess_batch, stack_views
from clfkit.vision.tta import tta_views

__all__ = ["PEERS", "Peers", "parse_peers", "check_peers", "peer_unavailable", "OpenVinoDirect", "compile_openvino",
           "openvino_backends", "openvino_folder_run"]

PEERS = ("torch-compile", "openvino")
_ALL, _NONE = "all", "none"
_CXX = ("g++", "c++", "clang++")
T = TypeVar("T")


def check_peers(peers: Sequence[str]) -> tuple[str, ...]:
    """``peers`` as a tuple without repeats, in the given order; a ConfigError naming ``--peers`` for an unknown
    name, with the closest known one."""
    for name in peers:
        if name not in PEERS:
            close = difflib.get_close_matches(name, [*PEERS, _ALL, _NONE], n=1, cutoff=0.5)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"--peers: unknown peer {name!r}; {hint}choose from {', '.join(PEERS)}, "
                              f"{_ALL} or {_NONE}")
    return tuple(dict.fromkeys(peers))


def parse_peers(text: str) -> tuple[str, ...] | None:
    """``--peers`` text → the peers asked for by name; None for ``all`` (every peer that can run here);
    () for ``none``."""
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    if names == [_ALL]:
        return None
    if names in ([_NONE], []):  # --peers "" lists no peer
        return ()
    if _ALL in names or _NONE in names:
        raise ConfigError(f"--peers {text}: {_ALL} and {_NONE} stand alone; or list peers, e.g. "
                          f"--peers {','.join(PEERS)}")
    return check_peers(names)


def peer_unavailable(peer: str, device: str) -> str | None:
    """Why ``peer`` cannot run on ``device`` here, or None.  Cheap: nothing is imported or compiled."""
    if peer == "openvino":
        if device == "cuda":
            return "OpenVINO used directly runs on the CPU, and --device cuda compares GPU runs"
        if importlib.util.find_spec("openvino") is None:
            return "OpenVINO is not installed (pip install openvino)"
    elif peer == "torch-compile":
        if device == "cuda" and importlib.util.find_spec("triton") is None:
            return "torch.compile on CUDA needs Triton (pip install triton)"
        if device == "cpu" and not any(shutil.which(c) for c in (os.environ.get("CXX", ""), *_CXX) if c):
            return "torch.compile on the CPU needs a C++ compiler (g++ or clang++ on PATH, or CXX)"
    return None


def openvino_folder_run(infer: Callable[[np.ndarray], np.ndarray], paths: Sequence[Path], spec: ModelSpec, *,
                        batch_size: int, tta: int = 0, seed: int = 0) -> FolderRun:
    """A user's obvious loop: decode + preprocess ``batch_size`` images with clfkit, run them, softmax; one
    thread, nothing overlapped.  With TTA the views of each image are those of every other backend."""
    views = max(1, tta)
    start = time.perf_counter()

    def logits() -> Iterator[np.ndarray]:
        for first in range(0, len(paths), batch_size):
            images = [load_rgb(p) for p in paths[first:first + batch_size]]
            if views > 1:  # (B × V, 3, H, W), the views of one image adjacent
                yield infer(np.concatenate([stack_views(tta_views(im, spec, tta, seed), spec) for im in images]))
            else:
                yield infer(preprocess_batch(images, spec))

    return timed_folder_run(logits(), views, spec.num_classes, start, spec.temperature)


@dataclass
class OpenVinoDirect:
    """One OpenVINO compile of the ONNX file, as a :class:`~clfkit.bench.backends.BenchBackend`."""

    name: str
    compiled: Any  # openvino.CompiledModel
    file: Path
    threads: int
    config: dict[str, Any]  # exactly what was passed to compile_model
    compile_seconds: float  # read_model + compile_model
    spec: ModelSpec  # the preprocessing the user's loop applies
    note: str = ""
    kind: str = "openvino"
    peer: str = "openvino"
    input_format: str = "float32_nchw"
    _output: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._output = self.compiled.output(0)

    @property
    def precision_hint(self) -> str:
        return compiled_precision(self.compiled)[0]  # "f32", "bf16", "f16"

    @property
    def precision(self) -> str:
        return compiled_precision(self.compiled)[1]

    @property
    def provider(self) -> str:
        return f"OpenVINO CPU {self.precision_hint}"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) → logits (N, C): ``compiled(batch)``, the call OpenVINO's documentation shows."""
        return self.compiled(batch)[self._output]

    def describe(self) -> dict[str, Any]:
        read = {key: str(self.compiled.get_property(key)) for key in ("PERFORMANCE_HINT", "NUM_STREAMS",
                                                                       "INFERENCE_NUM_THREADS")}
        return describe_backend(self, providers=[self.provider], peer=self.peer, notes=self.note,
                                compile_seconds=self.compile_seconds, compile_config=self.config,
                                inference_precision_hint=self.precision_hint, compiled_properties=read)

    def prepare(self, batch_sizes: Sequence[int], spec: ModelSpec) -> None:
        """Nothing to do: compile_model already compiled for every batch size."""

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Call, Call | None]:
        batch = normalize_batch(views, spec)
        return (lambda: self.infer(batch)), None

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        return openvino_folder_run(self.infer, paths, spec, batch_size=batch_size, tta=tta, seed=seed)

    def memory_job(self) -> dict[str, Any]:
        return {"kind": self.kind, "file": str(self.file), "device": "cpu", "config": self.config,
                "spec": self.spec.to_json()}


def compile_openvino(path: Path, config: dict[str, Any]) -> tuple[Any, float]:
    """``core.compile_model(core.read_model(path), "CPU", config)`` and the seconds it took."""
    import openvino as ov

    start = time.perf_counter()
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    return compiled, time.perf_counter() - start


def openvino_backends(path: Path, spec: ModelSpec, threads: int, taken: set[str]) -> list[OpenVinoDirect]:
    """The two OpenVINO rows for ``path`` (a file clf-bench has already opened, and so checked, with its runtime):
    OpenVINO's defaults, then f32 forced."""
    rows: list[OpenVinoDirect] = []
    for name, extra in (("openvino default", {}), ("openvino fp32", {"INFERENCE_PRECISION_HINT": "f32"})):
        config = {"INFERENCE_NUM_THREADS": int(threads), **extra}
        compiled, seconds = compile_openvino(path, config)
        base, n = name, 2
        while name in taken:  # a clfkit row of the same name (--runtime openvino): keep both, numbered
            name = f"{base} #{n}"
            n += 1
        taken.add(name)
        rows.append(OpenVinoDirect(name=name, compiled=compiled, file=Path(path), threads=threads, config=config,
                                   compile_seconds=seconds, spec=spec))
    default, fp32 = rows
    default.note = (f"OpenVINO's own defaults (only INFERENCE_NUM_THREADS set): it chose {default.precision_hint} "
                    "on this CPU (bf16 where the CPU computes bf16 natively, e.g. AMX)")
    same = " — the same as the default on this CPU" if fp32.precision_hint == default.precision_hint else ""
    fp32.note = f"INFERENCE_PRECISION_HINT f32 forced: ran in {fp32.precision_hint}{same}"
    return rows


@dataclass
class Peers:
    """The peers of one run and the rule for one that cannot run: asked for by name (``--peers X``) it is an error
    naming the flag; under the default (every peer) it is skipped, logged and listed with its reason, so the
    clfkit rows are not lost to a missing OpenVINO or a failing compiler."""

    asked: tuple[str, ...] | None  # None: every peer that can run here
    device: str
    log: Callable[[str], None] = lambda msg: None
    skipped: list[dict[str, str]] = field(default_factory=list)

    def wanted(self) -> list[str]:
        """The peers to try, those that cannot run here already skipped."""
        names = PEERS if self.asked is None else self.asked
        return [peer for peer in names if self._available(peer)]

    def _available(self, peer: str) -> bool:
        reason = peer_unavailable(peer, self.device)
        if reason is not None:
            self.skip(peer, reason)
        return reason is None

    def skip(self, peer: str, reason: str) -> None:
        if self.asked is not None:
            raise ConfigError(f"--peers {peer}: {reason}; leave it out of --peers (or pass --no-peers)")
        self.skipped.append({"peer": peer, "reason": reason})
        self.log(f"peer {peer} skipped: {reason}")

    def attempt(self, peer: str, make: Callable[[], T]) -> T | None:
        """``make()``, or None after :meth:`skip` when it fails."""
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - compilers and plugins fail in their own ways; one line for each
            self.skip(peer, str(exc) if isinstance(exc, ClfError) else f"{type(exc).__name__}: {first_line(exc)}")
            return None
