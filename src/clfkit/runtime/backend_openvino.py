"""OpenVINO as a :class:`~clfkit.runtime.backend.Backend`: it reads the same ``.onnx`` file clf-export wrote
(no second artifact) and compiles it for the CPU.  No torch import; ``openvino`` is imported on first use.

The precision is always asked for explicitly (``INFERENCE_PRECISION_HINT``): OpenVINO would otherwise pick
bf16 on CPUs with AMX, and a reduced precision is only used where it was asked for (``--precision bf16``) or an
export's verification showed that it agrees with the trained model (``--precision auto``, decided in
:mod:`clfkit.runtime.select`).  The precision OpenVINO really computes in is read back from the compiled model;
a precision this CPU cannot honour (bf16 without AMX/AVX-512 BF16: OpenVINO quietly falls back to f32) is an
error, never a silent substitute.  An int8 (QDQ) file runs its quantized layers in int8 and the rest in f32.
One stream with all ``threads``: clfkit calls the model from one thread, a batch at a time, so the LATENCY hint
gives both the best batch-1 latency and the best per-call batch throughput.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from clfkit.artifacts.onnx_file import check_model_file
from clfkit.artifacts.onnx_meta import META_PRECISION, read_props
from clfkit.devices import cpu_model, has_native_bf16
from clfkit.errors import ConfigError, ModelError, first_line

__all__ = ["OpenVinoBackend", "openvino_missing", "open_openvino", "compiled_precision",
           "default_precision"]

Log = Callable[[str], None]
_PRECISIONS = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}  # int8: the layers left in float


def compiled_precision(compiled: Any) -> tuple[str, str]:
    """(OpenVINO's own name, clfkit's) of the precision a compiled model computes in: ("f32", "fp32"), …"""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    return hint, _PRECISIONS.get(hint, hint)


def default_precision() -> str:
    """What OpenVINO itself would compute a float32 file in on this CPU (bf16 where AMX/AVX-512 BF16 exist)."""
    return "bf16" if has_native_bf16() else "fp32"


def openvino_missing() -> str | None:
    """Why ``--runtime openvino`` cannot be used here, or None (cheap: nothing is imported)."""
    if importlib.util.find_spec("openvino") is None:
        return "OpenVINO is not installed (pip install openvino); or use --runtime onnxruntime"
    return None


def _dims(partial_shape: Any) -> list[Any]:
    return [d.get_length() if d.is_static else None for d in partial_shape]


class OpenVinoBackend:
    """A model compiled by OpenVINO for the CPU, behind the Backend protocol."""

    runtime = "openvino"
    device = "cpu"

    def __init__(self, compiled: Any, path: Path, props: Mapping[str, str]) -> None:
        self.compiled = compiled
        self.path = Path(path)
        self._props = dict(props)
        self._request = compiled.create_infer_request()
        inp, out = compiled.input(0), compiled.output(0)
        self.input_name: str = inp.get_any_name()
        self.output_name: str = out.get_any_name()
        self.input_shape = _dims(inp.get_partial_shape())
        self.output_shape = _dims(out.get_partial_shape())
        self.input_type = "uint8" if inp.get_element_type().get_type_name() == "u8" else "float32"
        # An int8 (QDQ) file runs its quantized layers in int8 and the rest in the hint's precision.
        self.precision = "int8" if self._props.get(META_PRECISION) == "int8" else compiled_precision(compiled)[1]
        self.provider = f"OpenVINO CPU {self.precision}"
        self.providers = [self.provider]

    def metadata(self) -> Mapping[str, str]:
        return self._props

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            result = self._request.infer({0: batch})
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises RuntimeError for shapes, memory, …
            raise ModelError(f"{self.path}: OpenVINO failed on a batch of {len(batch)} rows "
                             f"({first_line(exc)}); a smaller --batch-size or --tta needs less memory") from None
        return np.asarray(result[self.compiled.output(0)])

    def model_call(self, batch: np.ndarray) -> Callable[[], Any]:
        return lambda: self._request.infer({0: batch})


def open_openvino(path: Path, device: str = "cpu", threads: int | None = None, log: Log | None = None,
                  precision: str = "auto") -> OpenVinoBackend:
    """The registry's opener.  ``device`` auto means the CPU (OpenVINO's GPU plugin is for Intel GPUs; CUDA is
    onnxruntime's).  ``precision`` auto is the file's own (fp32, or int8 for an int8 file)."""
    if device == "cuda":
        raise ConfigError("--runtime openvino runs on the CPU; for --device cuda use --runtime onnxruntime")
    import openvino as ov

    check_model_file(path)
    props = read_props(path)
    own = props.get(META_PRECISION, "fp32")
    wanted = own if precision == "auto" else precision
    if own == "int8" and wanted != "int8" or wanted == "int8" and own != "int8":
        raise ConfigError(f"--precision {wanted}: {path.name} is a {own} file; int8 needs the file clf-export "
                          "--int8 wrote (model.int8.onnx), other precisions the plain model.onnx")
    if wanted not in _HINTS:
        raise ConfigError(f"--precision {wanted!r} is not one of {', '.join(_HINTS)}")
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINTS[wanted], "NUM_STREAMS": 1,
                              "PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    try:
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as exc:  # noqa: BLE001 - OpenVINO's frontend and plugin raise RuntimeError subclasses
        raise ModelError(f"{path}: OpenVINO cannot load this file as an ONNX model ({first_line(exc)}); pass a "
                         ".onnx file written by clf-export") from None
    backend = OpenVinoBackend(compiled, path, props)
    if backend.precision != wanted:  # e.g. bf16 asked for on a CPU without bf16 hardware: OpenVINO runs f32
        raise ConfigError(f"--precision {wanted}: OpenVINO computes in {backend.precision} on this CPU "
                          f"({cpu_model()}), which has no native {wanted}; use --precision fp32 or auto")
    return backend
