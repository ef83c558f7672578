"""Device names every command takes, the cheap check for an NVIDIA driver, and what CPU this is.  No torch import.

The CPU's name and instruction-set extensions decide which kernels a runtime picks (bf16 needs AMX or
AVX-512 BF16, fast int8 VNNI), so they are recorded beside every measured speed and verification, and a
choice measured on one machine is only reused on the same kind of machine (:func:`machine_id`).
"""
from __future__ import annotations

import ctypes
import functools
import os
import platform
import sys
from pathlib import Path

__all__ = ["DEVICES", "cuda_driver_missing", "cpu_model", "cpu_features", "has_native_bf16", "usable_cores",
           "physical_cores", "machine_id"]

DEVICES = ("auto", "cpu", "cuda")


def cuda_driver_missing() -> str | None:
    """Why CUDA cannot work on this machine, or None when a driver library loads (cheap, no session)."""
    if sys.platform == "darwin":
        return "CUDA does not exist on macOS"
    name = "nvcuda.dll" if os.name == "nt" else "libcuda.so.1"
    try:
        ctypes.CDLL(name)
    except OSError:
        return f"no NVIDIA driver ({name} not found)"
    return None


# Instruction-set extensions that decide which kernels onnxruntime (MLAS), oneDNN and OpenVINO pick on x86.
_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> tuple[str, ...]:
    try:
        return tuple(Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def cpu_model() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def cpu_features() -> list[str]:
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            return [f for f in _FEATURES if f in flags]
    return []


def has_native_bf16() -> bool:
    """bf16 arithmetic in hardware (AMX or AVX-512 BF16); elsewhere runtimes emulate it, slower than fp32."""
    return bool({"amx_bf16", "avx512_bf16"} & set(cpu_features()))


def usable_cores() -> int:
    """Logical CPUs this process may run on (the affinity mask: a container's or taskset's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def physical_cores() -> int | None:
    """Distinct (package, core) pairs in /proc/cpuinfo; None where that is not available."""
    cores, package = set(), "0"
    for line in _cpuinfo():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "physical id":
            package = value.strip()
        elif key == "core id":
            cores.add((package, value.strip()))
    return len(cores) or None


def machine_id() -> str:
    """The kind of machine a speed was measured on: CPU name, extensions and usable cores."""
    return f"{cpu_model()} | {' '.join(cpu_features()) or '-'} | {usable_cores()} cores"
