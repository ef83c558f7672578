"""The runtimes clf-infer, clf-serve and clf-bench can run a model with (``--runtime``).  No torch import.

Each entry opens a :class:`~clfkit.runtime.backend.Backend`; :func:`register_runtime` adds one (a plug-in, or
a test's fake).  Runtime libraries are imported only when a model is opened with them.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from clfkit.errors import ConfigError
from clfkit.runtime import backend_openvino, backend_ort
from clfkit.runtime.backend import Backend

__all__ = ["Opener", "PRECISIONS", "RuntimeInfo", "register_runtime", "runtime_names", "open_backend",
           "runtime_missing"]

Log = Callable[[str], None]
# (path, device, threads, log or None, precision) → a Backend; raises ModelError/ConfigError with one line for
# the user.  precision is "auto" (the file's own) or one of PRECISIONS, which the runtime must really compute in.
Opener = Callable[[Path, str, "int | None", "Log | None", str], Backend]
PRECISIONS = ("fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class RuntimeInfo:
    name: str
    open: Opener
    available: Callable[[], "str | None"]  # None when the runtime can be used here, else why not


_RUNTIMES: dict[str, RuntimeInfo] = {}


def register_runtime(name: str, open: Opener, available: Callable[[], str | None] = lambda: None) -> None:
    """Make ``name`` a value of ``--runtime``; ``available`` says (cheaply) whether it is installed."""
    _RUNTIMES[name] = RuntimeInfo(name, open, available)


register_runtime("onnxruntime", backend_ort.open_ort)
register_runtime("openvino", backend_openvino.open_openvino, backend_openvino.openvino_missing)


def runtime_names() -> list[str]:
    return list(_RUNTIMES)


def _info(runtime: str) -> RuntimeInfo:
    info = _RUNTIMES.get(runtime)
    if info is None:
        close = difflib.get_close_matches(str(runtime), ["auto", *_RUNTIMES], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"--runtime {runtime!r} is not one of auto, {', '.join(_RUNTIMES)}.{hint}")
    return info


def runtime_missing(runtime: str) -> str | None:
    """Why ``runtime`` cannot be used here (not installed, …), or None; an unknown name is a ConfigError."""
    return _info(runtime).available()


def open_backend(path: str | Path, runtime: str = "onnxruntime", device: str = "auto", threads: int | None = None,
                 log: Log | None = None, precision: str = "auto") -> Backend:
    """Load ``path`` with the named runtime on ``device`` in ``precision`` (auto: the file's own); ``log`` gets
    one-line notices such as a CPU fallback (None: the runtime's own default, onnxruntime's goes to the
    ``logging`` module).  ``--runtime auto`` is decided above this, in :mod:`clfkit.runtime.select`."""
    info = _info(runtime)
    if precision != "auto" and precision not in PRECISIONS:
        raise ConfigError(f"--precision {precision!r} is not one of auto, {', '.join(PRECISIONS)}")
    missing = info.available()
    if missing is not None:
        raise ConfigError(f"--runtime {runtime}: {missing}")
    return info.open(Path(path), device, threads, log, precision)
