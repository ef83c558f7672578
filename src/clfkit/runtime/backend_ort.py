"""onnxruntime as a :class:`~clfkit.runtime.backend.Backend`: providers chosen explicitly, arrays in, logits out.

No torch import.  The device rule is "never silently on the wrong device":

* ``cpu``  — CPUExecutionProvider only.
* ``cuda`` — ``onnxruntime.preload_dlls()`` (finds the CUDA 13 / cuDNN libraries of the ``nvidia-*`` wheels),
  then CUDAExecutionProvider with CPU behind it for the few ops CUDA lacks.  onnxruntime does not raise when
  the CUDA provider fails to load: it logs and quietly runs on CPU.  So after the session is created,
  ``session.get_providers()`` is checked and a :class:`ConfigError` names the reason when CUDA is not active.
* ``auto`` — CUDA when it really works (driver present, provider active, one warm-up run succeeds), else CPU
  with one line saying why.

``OrtBackend.provider`` is the provider that actually runs the model; the command prints it and writes it into
every output.  TensorRT is never selected implicitly (its engines take minutes to build on first run).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import onnxruntime as ort

from clfkit.artifacts.onnx_file import check_model_file
from clfkit.artifacts.onnx_meta import META_PRECISION
from clfkit.devices import DEVICES, cuda_driver_missing
from clfkit.errors import ConfigError, ModelError, first_line

__all__ = ["CPU", "CUDA", "OrtBackend", "create_session", "open_ort"]

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_log = logging.getLogger(__name__)
Log = Callable[[str], None]


def _session_options(threads: int | None) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or 0)  # 0 = onnxruntime's default (physical cores)
    options.inter_op_num_threads = 1  # a classifier is one sequential chain; parallel branches gain nothing
    # Idle intra-op threads spin by default, burning the cores the decode threads need while the next batch
    # is being prepared; with decode and inference overlapped, blocking threads are faster end to end
    # (benchmarks/results/design-choices.md).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # The memory pattern pre-plans one arena block per input shape; for a batch of 32 photos that held ~300 MB
    # more at peak for no measurable speed (benchmarks/results/design-choices.md, "memory pattern").
    options.enable_mem_pattern = False
    return options


def _ort_reason(exc: BaseException) -> str:
    """onnxruntime's message without its prefix, the model path again and C++ source positions."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    text = re.sub(r"^Load model from .*? failed:\s*", "", text)
    text = re.sub(r"\S+\.(?:cc|cpp|h):\d+ (?:[\w:~<>]+::[\w~<>]+\([^)]*\) )?", "", text)
    return text.strip()[:300] or type(exc).__name__


def create_session(path: Path, device: str = "auto", threads: int | None = None,
                   log: Log | None = None) -> tuple[ort.InferenceSession, str]:
    """An InferenceSession on ``device`` and the provider that really runs it (see the module docstring)."""
    log = log or _log.warning
    if device not in DEVICES:
        raise ConfigError(f"--device {device!r} is not one of {', '.join(DEVICES)}")
    check_model_file(path)
    options = _session_options(threads)
    if device == "cpu":
        return _open(path, options, [CPU]), CPU

    available = ort.get_available_providers()
    if CUDA not in available:
        reason = (f"this onnxruntime ({ort.__version__}) has no CUDA provider (it offers "
                  f"{', '.join(available)}); install `onnxruntime-gpu` instead of `onnxruntime`")
    else:
        reason = cuda_driver_missing()
    if reason is None:
        try:  # CUDA 13 + cuDNN from the nvidia-* wheels (torch installs the same ones)
            ort.preload_dlls()
        except Exception as exc:  # noqa: BLE001 - a failed preload shows up as an inactive provider below
            log(f"onnxruntime.preload_dlls() failed ({first_line(exc)}); relying on the system library path")
        session = _open(path, options, [CUDA, CPU])
        active = session.get_providers()
        if active and active[0] == CUDA:
            if device == "cuda":
                return session, CUDA
            failure = _warm_up(session)
            if failure is None:
                return session, CUDA
            reason = f"a test run on CUDA failed ({failure})"
        else:
            reason = (f"onnxruntime could not start the CUDA provider (active: {', '.join(active)}); its log "
                      "above names the missing library (CUDA 13 and cuDNN 9 are needed)")
    if device == "cuda":
        raise ConfigError(f"--device cuda: CUDA is not available: {reason}. Use --device cpu (or auto to "
                          "fall back to the CPU with a message).")
    log(f"device auto: CUDA not usable ({reason}); running on {CPU}")
    return _open(path, options, [CPU]), CPU


def _open(path: Path, options: ort.SessionOptions, providers: list[str]) -> ort.InferenceSession:
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind types (InvalidProtobuf, Fail, …)
        raise ModelError(f"{path}: onnxruntime cannot load this file as an ONNX model ({_ort_reason(exc)}); "
                         "pass a .onnx file written by clf-export") from None


def _warm_up(session: ort.InferenceSession) -> str | None:
    """Run one all-zero input; None when it works, else the error's first line."""
    inp = session.get_inputs()[0]
    shape = [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
    dtype = np.uint8 if "uint8" in inp.type else np.float32
    try:
        session.run(None, {inp.name: np.zeros(shape, dtype)})
    except Exception as exc:  # noqa: BLE001 - any failure means "do not use CUDA"
        return first_line(exc)
    return None


class OrtBackend:
    """An onnxruntime InferenceSession behind the :class:`~clfkit.runtime.backend.Backend` protocol."""

    runtime = "onnxruntime"

    def __init__(self, session: ort.InferenceSession, provider: str, path: Path) -> None:
        self.session = session
        self.provider = provider
        self.path = Path(path)
        self.device = "cuda" if provider == CUDA else "cpu"
        self.providers = list(session.get_providers())
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        self.input_name: str = inp.name
        self.output_name: str = out.name
        self.input_shape = list(inp.shape)
        self.output_shape = list(out.shape)
        self.input_type = "uint8" if inp.type == "tensor(uint8)" else "float32" if inp.type == "tensor(float)" \
            else inp.type
        # onnxruntime computes in the precision the graph is written in (fp32, or the int8/fp16 variants)
        self.precision = str(self.metadata().get(META_PRECISION, "fp32"))

    def metadata(self) -> Mapping[str, str]:
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, batch: np.ndarray) -> np.ndarray:
        try:
            return self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as exc:  # noqa: BLE001 - onnxruntime's pybind errors (out of memory, bad shapes, …)
            raise ModelError(f"{self.path}: onnxruntime failed on a batch of {len(batch)} rows on {self.provider} "
                             f"({first_line(exc)}); a smaller --batch-size or --tta needs less memory") from None

    def model_call(self, batch: np.ndarray) -> Callable[[], Any]:
        if self.device != "cuda":
            return lambda: self.run(batch)
        # On CUDA, input and output stay in GPU memory (IO binding), so host↔device copies are not counted as
        # model time.  run_with_iobinding returns after the CUDA stream has finished: no extra sync is needed.
        binding = self.session.io_binding()
        device_input = ort.OrtValue.ortvalue_from_numpy(batch, "cuda", 0)
        binding.bind_ortvalue_input(self.input_name, device_input)
        binding.bind_output(self.output_name, "cuda", 0)

        def call() -> None:
            self.session.run_with_iobinding(binding)

        call.keep_alive = device_input  # type: ignore[attr-defined]  # the bound buffer must outlive the binding
        return call


def open_ort(path: Path, device: str = "auto", threads: int | None = None, log: Log | None = None,
             precision: str = "auto") -> OrtBackend:
    """The registry's opener: :func:`create_session` wrapped as a backend.  onnxruntime computes in the precision
    the file is written in, so ``precision`` (other than auto) must be the file's own."""
    session, provider = create_session(path, device, threads, log=log)
    backend = OrtBackend(session, provider, path)
    if precision not in ("auto", backend.precision):
        other = ("use --runtime openvino for bf16 on a CPU with AMX" if precision == "bf16" else
                 "pass the file clf-export wrote for it (model.int8.onnx, model.fp16.onnx)")
        raise ConfigError(f"--precision {precision}: onnxruntime runs {path.name} in the precision it is written in "
                          f"({backend.precision}); {other}")
    return backend
