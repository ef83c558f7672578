"""Where and in what precision training runs: ``--device`` and ``--precision`` resolved once.  Torch.

``auto`` means CUDA when PyTorch sees a GPU, else the CPU; precision ``auto`` means bf16 autocast where the
hardware does it natively (AMX/AVX-512 CPUs, Ampere+ GPUs), fp16 on older GPUs, else fp32.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import ContextManager

import torch

from clfkit.errors import ConfigError

__all__ = ["resolve_device", "resolve_precision", "autocast"]


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but no CUDA device is available; use --device cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """auto → bf16 autocast where the hardware does it natively (AMX/AVX-512 CPUs, Ampere+ GPUs), fp16 on
    older GPUs, else fp32."""
    if name == "fp16" and device.type == "cpu":
        raise ConfigError("--precision fp16 is for CUDA; on a CPU use bf16 or fp32")
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    try:
        return "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "fp32"
    except (AttributeError, RuntimeError):
        return "fp32"


def autocast(device: torch.device, precision: str) -> ContextManager:
    """Autocast context for a resolved precision ("fp32", "bf16", "fp16")."""
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
