""""PyTorch best": the fastest way a PyTorch user runs the checkpoint without leaving PyTorch — ``torch.compile``
(inductor, with freezing) of the eval model in channels_last, under autocast where the hardware has the lower
precision natively.

* Precision (:func:`best_precision`): fp16 autocast on CUDA; bf16 autocast on a CPU with native bf16 (the
  ``amx_bf16`` or ``avx512_bf16`` flag in /proc/cpuinfo); fp32 elsewhere, because without those instructions
  oneDNN emulates bf16 and runs slower than fp32 (about 3x on an AVX2-only EPYC).  The row says why.
* ``dynamic=False``: one graph specialised per batch size, the fastest kernels.  Every batch size the run will
  call is compiled in :meth:`CompiledTorchModel.prepare` *before* any timing; each compile (first call until
  warm) is timed and reported on its own, never inside a latency or end-to-end number.  The end-to-end pass
  calls the model at the batch size, at the last partial batch, and at both times the TTA views.
* The model is a deep copy: channels_last converts a module in place, and the eager rows share the original.

Compile times depend on inductor's on-disk cache (``TORCHINDUCTOR_CACHE_DIR``): a first compile on a machine
builds C++ (CPU) or Triton (GPU) kernels and takes far longer than a repeat; each compile records whether
inductor's FX-graph cache had it.
"""
from __future__ import annotations

import copy
import inspect
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from clfkit.bench.backends import FolderRun, folder_batches
from clfkit.bench.baseline import TorchBackend, TorchModel, torch_folder_run
from clfkit.bench.env import cpu_features
from clfkit.spec import ModelSpec

__all__ = ["NATIVE_BF16_FLAGS", "best_precision", "CompiledTorchModel",
           "CompiledTorchBackend", "compiled_backend"]

NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of CPUs that compute bf16 in hardware
# dynamic=False compiles one graph per batch size; past the recompile limit dynamo silently runs eager, which
# would put eager numbers in a "compiled" row.  A run calls a handful of sizes; this leaves room to spare.
RECOMPILE_LIMIT = 64


def best_precision(device: str, features: Iterable[str]) -> tuple[str, str]:
    """The precision "PyTorch best" runs in on ``device`` with these CPU ``features``, and why, for the row."""
    if device == "cuda":
        return "fp16", "fp16 autocast: CUDA tensor cores compute fp16 natively"
    native = sorted(set(features) & set(NATIVE_BF16_FLAGS))
    if native:
        return "bf16", f"bf16 autocast: this CPU computes bf16 natively ({', '.join(native)})"
    return "fp32", ("fp32: this CPU has no native bf16 (no amx_bf16 or avx512_bf16 flag), so bf16 would be "
                    "emulated and slower than fp32")


# freezing: inductor treats the eval weights as constants, folds them and pre-packs them for oneDNN; PyTorch's
# own advice for inference with the CPU backend, and it needs no_grad, which every call here has.
COMPILE_OPTIONS = {"freezing": True}


def _compile_kwargs() -> dict[str, Any]:
    kwargs: dict[str, Any] = {"dynamic": False, "options": dict(COMPILE_OPTIONS)}
    if "isolate_recompiles" in inspect.signature(torch.compile).parameters:  # newer torch: a limit of its own
        kwargs.update(recompile_limit=RECOMPILE_LIMIT, isolate_recompiles=True)
    else:  # older torch: one process-wide limit, shared by every compiled function
        from torch import _dynamo

        _dynamo.config.cache_size_limit = max(_dynamo.config.cache_size_limit, RECOMPILE_LIMIT)
    return kwargs


def _fx_cache_hits() -> int:
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"])


class CompiledTorchModel(TorchModel):
    """A :class:`TorchModel` whose module is ``torch.compile``-d in channels_last; call it like the eager one."""

    def __init__(self, model: torch.nn.Module, precision: str = "fp32", device: str = "cpu") -> None:
        eager = copy.deepcopy(model).to(device).eval().to(memory_format=torch.channels_last)
        super().__init__(eager, precision, device)
        self.compiled = torch.compile(self.model, **_compile_kwargs())
        self.compiles: dict[int, dict[str, Any]] = {}  # batch size → {"seconds": …, "fx_cache_hit": …}

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) float32 → float32 logits (B, C); the copy into channels_last is part of the call, as in a
        user's loop."""
        with torch.no_grad(), self._autocast():
            x = batch.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            return self.compiled(x).float()

    def prepare(self, batch_sizes: Iterable[int], spec: ModelSpec) -> None:
        """Compile for every batch size not compiled yet, timing each: the first call (which traces and builds
        the kernels) until the model is warm, i.e. a second call on the same shape."""
        for size in sorted(set(batch_sizes) - set(self.compiles)):
            dummy = torch.zeros((size, 3, spec.input_size, spec.input_size), dtype=torch.float32)
            hits = _fx_cache_hits()
            start = time.perf_counter()
            self(dummy)
            self.sync()
            self(dummy)  # a second call on the same shape: anything still lazily set up happens here, untimed later
            self.sync()
            self.compiles[size] = {"seconds": time.perf_counter() - start, "fx_cache_hit": _fx_cache_hits() > hits}

    @property
    def compile_seconds(self) -> float:
        return float(sum(c["seconds"] for c in self.compiles.values()))


@dataclass
class CompiledTorchBackend(TorchBackend):
    """"PyTorch best" as a :class:`~clfkit.bench.backends.BenchBackend`: the baseline's DataLoader way, compiled."""

    runner: CompiledTorchModel
    note: str = ""
    kind: str = "pytorch-compiled"
    peer: str = "torch-compile"

    def describe(self) -> dict[str, Any]:
        info = super().describe()
        info.update(peer=self.peer, notes=self.note, compile_seconds=self.runner.compile_seconds,
                    compiles=[{"batch_size": b, **c} for b, c in sorted(self.runner.compiles.items())],
                    compile_options={"dynamic": False, "memory_format": "channels_last", "backend": "inductor",
                                     **COMPILE_OPTIONS})
        return info

    def prepare(self, batch_sizes: Iterable[int], spec: ModelSpec) -> None:
        self.runner.prepare(batch_sizes, spec)

    def model_call(self, views: np.ndarray, spec: ModelSpec) -> tuple[Any, Any]:
        self.prepare([len(views)], spec)  # a no-op after run_bench's prepare; never compiles inside the timing
        return super().model_call(views, spec)

    def folder_run(self, paths: Sequence[Path], spec: ModelSpec, *, batch_size: int, tta: int,
                   decode_workers: int | None, loader_workers: int, seed: int = 0) -> FolderRun:
        self.prepare(folder_batches(len(paths), batch_size, max(1, tta)), spec)
        return torch_folder_run(self.runner, paths, spec, batch_size=batch_size, tta=tta, workers=loader_workers,
                                seed=seed)


def compiled_backend(model: torch.nn.Module, checkpoint: Path, device: str) -> CompiledTorchBackend:
    """"PyTorch best" for ``device``: the precision :func:`best_precision` picks for this machine."""
    precision, note = best_precision(device, cpu_features())
    label = {"fp32": "fp32", "bf16": "bf16 autocast", "fp16": "fp16 amp"}[precision]
    return CompiledTorchBackend(name=f"pytorch compiled {label}", runner=CompiledTorchModel(model, precision, device),
                                file=Path(checkpoint), note=note)
