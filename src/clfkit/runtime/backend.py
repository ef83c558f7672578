"""What an inference runtime must provide to run a clfkit ONNX file.  No torch import.

A runtime (onnxruntime today) is a :class:`Backend`: it loads a ``.onnx`` file on a device, says what really
runs it (device, precision, provider) and runs a prepared batch.  Everything above it — the
:class:`~clfkit.runtime.engine.Engine` (spec, preprocessing, TTA), clf-infer, clf-serve, clf-bench — talks to
this protocol only, so a new runtime is one module with a class like this and one line in
:mod:`clfkit.runtime.registry`.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Backend"]


@runtime_checkable
class Backend(Protocol):
    """One loaded model on one device."""

    runtime: str  # the registry name, e.g. "onnxruntime"
    device: str  # "cpu" or "cuda": where the model really runs
    precision: str  # the arithmetic it really runs in: "fp32", "bf16", "fp16" or "int8"
    provider: str  # what runs it, for every output: onnxruntime's execution provider, …
    providers: Sequence[str]  # everything taking part, ``provider`` first (onnxruntime's CPU fallback after CUDA)
    input_name: str
    output_name: str
    input_shape: Sequence[Any]  # ints for fixed dimensions, anything else for dynamic ones
    input_type: str  # numpy dtype name of the input: "float32" or "uint8"
    output_shape: Sequence[Any]

    def metadata(self) -> Mapping[str, str]:
        """The file's ``metadata_props`` (clfkit's spec and friends live there)."""

    def run(self, batch: np.ndarray) -> np.ndarray:
        """(N, ...) input of ``input_type`` → the first output, (N, C)."""

    def model_call(self, batch: np.ndarray) -> Callable[[], Any]:
        """A zero-argument call that runs ``batch`` with the input already where the runtime keeps it (device
        memory on a GPU), for model-only benchmarks; it returns once the result is computed."""
