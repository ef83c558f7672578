"""The onnxruntime backend (clfkit.runtime.backend_ort): providers are explicit, CUDA is checked for real, a
silent fallback to CPU is caught, and ``auto`` falls back with one line that says why.

The tests pretend CUDA exists by monkeypatching ``clfkit.runtime.backend_ort``; the real CUDA run is in
test_engine.py (marked gpu)."""
from __future__ import annotations

import onnxruntime as ort
import pytest

from clfkit.errors import ConfigError
from clfkit.runtime import Engine, backend_ort


def _cuda_works() -> bool:
    return backend_ort.cuda_driver_missing() is None and "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(_cuda_works(), reason="this machine has a working CUDA driver")
def test_cuda_requested_without_cuda_is_a_clear_error(tiny):
    with pytest.raises(ConfigError, match="--device cuda: CUDA is not available"):
        Engine.from_onnx(tiny.onnx, device="cuda")


class _SilentCpuFallback:
    """What onnxruntime does when the CUDA provider cannot load: no exception, just a CPU-only session."""

    def __init__(self, path, sess_options=None, providers=None):
        self.requested = providers
        self._real = _REAL_SESSION(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    def get_providers(self):
        return ["CPUExecutionProvider"]

    def __getattr__(self, name):
        return getattr(self._real, name)


_REAL_SESSION = ort.InferenceSession


@pytest.fixture
def cuda_looks_available(monkeypatch):
    """Pretend the driver and the CUDA provider exist, while the session silently falls back to CPU."""
    monkeypatch.setattr(backend_ort, "cuda_driver_missing", lambda: None)
    monkeypatch.setattr(backend_ort.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(backend_ort.ort, "preload_dlls", lambda *a, **k: None, raising=False)
    monkeypatch.setattr(backend_ort.ort, "InferenceSession", _SilentCpuFallback)


def test_cuda_silently_falling_back_to_cpu_is_caught(tiny, cuda_looks_available):
    with pytest.raises(ConfigError, match="could not start the CUDA provider"):
        Engine.from_onnx(tiny.onnx, device="cuda")


def test_auto_falls_back_to_cpu_with_one_line(tiny, cuda_looks_available):
    lines: list[str] = []
    engine = Engine.from_onnx(tiny.onnx, device="auto", log=lines.append)
    assert engine.provider == "CPUExecutionProvider"
    assert len(lines) == 1 and "CUDA not usable" in lines[0] and "CPUExecutionProvider" in lines[0]


def test_auto_without_a_driver_says_why(tiny, monkeypatch):
    monkeypatch.setattr(backend_ort, "cuda_driver_missing", lambda: "no NVIDIA driver (libcuda.so.1 not found)")
    monkeypatch.setattr(backend_ort.ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    lines: list[str] = []
    engine = Engine.from_onnx(tiny.onnx, device="auto", log=lines.append)
    assert engine.provider == "CPUExecutionProvider"
    assert lines == ["device auto: CUDA not usable (no NVIDIA driver (libcuda.so.1 not found)); running on "
                     "CPUExecutionProvider"]


def test_cpu_only_onnxruntime_package_is_named(tiny, monkeypatch):
    monkeypatch.setattr(backend_ort.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ConfigError, match="install `onnxruntime-gpu`"):
        Engine.from_onnx(tiny.onnx, device="cuda")


def test_providers_are_always_passed_explicitly(tiny, monkeypatch):
    seen = []

    def spy(path, sess_options=None, providers=None):
        seen.append(providers)
        return _REAL_SESSION(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(backend_ort.ort, "InferenceSession", spy)
    Engine.from_onnx(tiny.onnx, device="cpu", threads=2)
    assert seen == [["CPUExecutionProvider"]]
