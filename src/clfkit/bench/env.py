"""What machine and software a benchmark ran on, recorded with its numbers.  No torch import at module level.

Benchmarks are only comparable on the same CPU, thread count and library versions, and only believable when
the machine was quiet: the load average before and after the run is recorded next to the numbers.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from importlib import metadata
from typing import Any

from clfkit.devices import cpu_features, cpu_model, physical_cores, usable_cores

__all__ = ["cpu_model", "usable_cores", "physical_cores", "cpu_features", "library_versions", "load_average",
           "environment"]

_PACKAGES = ("clfkit", "torch", "torchvision", "timm", "onnxruntime", "onnxruntime-gpu", "openvino", "onnx",
             "numpy", "pillow")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages (runnable processes); None on systems without them."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _gpu() -> str | None:
    if "torch" not in sys.modules:  # never import torch just to ask (an onnxruntime-only process stays light)
        return None
    import torch

    if not torch.cuda.is_available():
        return None
    return ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))


def environment(command: str | None = None) -> dict[str, Any]:
    """The machine, the libraries and the command line, JSON-ready."""
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_features": cpu_features(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable_cores(),
        "physical_cores": physical_cores(),
        "gpu": _gpu(),
        "versions": library_versions(),
        "command": command if command is not None else " ".join(sys.argv),
    }
