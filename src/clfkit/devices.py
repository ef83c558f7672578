"""Device names every command takes, and the cheap check for an NVIDIA driver.  No torch import."""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["DEVICES", "cuda_driver_missing"]

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
