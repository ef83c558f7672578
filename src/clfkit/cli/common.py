"""What every console command shares: turning user errors into one line, and the options several commands take.

Each command (``clfkit.cli.<command>``) is a thin click layer over one library function.  User errors
(:class:`clfkit.errors.ClfError`) and the machine's own (disk full, read-only folder, no permission:
:func:`clfkit.errors.environment_error`) become one line on stderr and exit code 1 (click's usage errors exit
2); anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Callable, TypeVar

import click

from clfkit.devices import DEVICES
from clfkit.errors import ClfError, environment_error

__all__ = ["CONTEXT", "user_errors", "model_option", "device_option", "threads_option", "tta_option",
           "topk_option", "runtime_option", "workers_option"]

F = TypeVar("F", bound=Callable[..., Any])
CONTEXT = {"help_option_names": ["-h", "--help"]}


def user_errors(func: F) -> F:
    """Turn ClfError into click.ClickException: one clear line, no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ClfError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:  # disk full, read-only folder, no permission: one line too; other OSErrors are bugs
            line = environment_error(exc)
            if line is None:
                raise
            raise click.ClickException(line) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted") from None

    return wrapper  # type: ignore[return-value]


# Options several commands take, defined once so their names, defaults and help never drift apart.
model_option = click.option(
    "--model", "-m", type=click.Path(path_type=Path), default=Path("model.onnx"), show_default=True,
    help="ONNX model written by clf-export (spec and class names are read from it).")
device_option = click.option(
    "--device", type=click.Choice(DEVICES), default="auto", show_default=True,
    help="auto = CUDA when it really works, else CPU (said on stderr); cuda fails if CUDA is not active.")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None,
                              help="Inference threads (default: physical cores).")
tta_option = click.option("--tta", type=click.IntRange(min=0), default=0, show_default=True,
                          help="Test-time augmentation: average the probabilities of N views (0 or 1 = off).")
topk_option = click.option("--topk", "-k", type=click.IntRange(min=1), default=5, show_default=True,
                           help="Most likely classes per prediction (capped at the number of classes).")


def runtime_option(func: F) -> F:
    """``--runtime`` and ``--precision``, their choices from the runtime registry (imported only by the commands
    that run a model)."""
    from clfkit.runtime.registry import PRECISIONS, runtime_names

    func = click.option(
        "--precision", type=click.Choice(["auto", *PRECISIONS]), default="auto", show_default=True,
        help="What the model computes in. auto: the fastest precision (or variant file, e.g. model.int8.onnx "
             "beside model.onnx) that clf-export verified on this machine, else the file's own; a forced one "
             "this CPU or runtime cannot compute in is an error.",
    )(func)
    return click.option(
        "--runtime", type=click.Choice(["auto", *runtime_names()]), default="auto", show_default=True,
        help="What runs the model, on the same .onnx file: onnxruntime (CPU or CUDA) or OpenVINO (CPU). auto: "
             "onnxruntime for CUDA; on the CPU what clf-export's verification measured fastest on this machine, "
             "else onnxruntime.",
    )(func)


workers_option = click.option("--workers", type=click.IntRange(min=0), default=None,
                              help="Images decoded in parallel (default: cores + 1; 0 = in the main thread).")
