"""``--runtime auto`` and ``--precision auto``: which runtime, precision and file run a model.  No torch import.

The rule a user can predict:

1. CUDA is onnxruntime's: ``--device cuda``, or ``auto`` on a machine where onnxruntime's CUDA provider and a
   driver exist, run onnxruntime (which then checks CUDA really works, as it always has).
2. On the CPU, the export's verification record (``model.verify.json``, :mod:`clfkit.artifacts.verify_record`)
   decides when it was written on the same kind of machine (:func:`clfkit.devices.machine_id`): among the
   (file, runtime, precision) runs that passed verification with top-1 agreement >= :data:`AUTO_MIN_AGREEMENT`
   and at most :data:`AUTO_MAX_ACCURACY_DROP` accuracy lost against PyTorch fp32 on the labelled verify photos,
   the one measured fastest runs.  So a verified ``model.int8.onnx`` beside ``model.onnx``, or OpenVINO's bf16
   on a CPU with AMX, is used only because it was shown to agree with the trained model.
3. Without such a record: onnxruntime, the file as given, in its own precision.  Which CPU runtime is faster
   depends on the CPU and the model (OpenVINO's defaults were 2.4x onnxruntime on a Sapphire Rapids; on an AMD
   EPYC onnxruntime was 1.3x OpenVINO: benchmarks/results/design-choices.md), so OpenVINO is chosen because it
   was measured faster here, never guessed.

An explicit ``--runtime`` or ``--precision`` narrows the choice and is never overridden; ``--precision int8``
with ``model.onnx`` runs the ``model.int8.onnx`` beside it.  The choice and the reason are reported by
:meth:`clfkit.runtime.engine.Engine.describe` and written into every output through the provider.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from clfkit.artifacts.onnx_meta import META_PRECISION, read_props
from clfkit.artifacts.verify_record import RuntimeCheck, read_checks, variant_path
from clfkit.devices import cpu_model, cuda_driver_missing, machine_id
from clfkit.errors import ConfigError, ModelError
from clfkit.io import file_sha256
from clfkit.runtime.registry import runtime_missing

__all__ = ["AUTO_MIN_AGREEMENT", "AUTO_MAX_ACCURACY_DROP", "Choice", "choose"]

AUTO_MIN_AGREEMENT = 0.99  # top-1 agreement with PyTorch fp32 a variant needs before auto runs it
AUTO_MAX_ACCURACY_DROP = 0.005  # accuracy it may lose on the labelled verify photos (half a point)


@dataclass(frozen=True)
class Choice:
    path: Path  # the file to open (may be a verified variant beside the one asked for)
    runtime: str
    precision: str  # what to ask the runtime for ("auto": the file's own)
    reason: str  # one line: why this runtime, precision and file


def _cuda_possible() -> bool:
    """Cheap: onnxruntime has a CUDA provider and an NVIDIA driver loads (no session is created)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers() and cuda_driver_missing() is None


def _default_cpu_runtime(path: Path) -> tuple[str, str]:
    if runtime_missing("openvino") is not None:
        return "onnxruntime", "OpenVINO is not installed"
    return "onnxruntime", (f"no verification of {path.name} measured on this machine ({cpu_model()}); "
                           "clf-export measures and verifies the runtimes")


def _file_precision(path: Path) -> str:
    try:
        return read_props(path).get(META_PRECISION, "fp32")
    except ModelError:
        return "fp32"  # not readable as ONNX: the opener below gives the one clear error


def _eligible(check: RuntimeCheck, runtime: str, precision: str, machine: str) -> bool:
    return (check.passed and check.machine == machine and check.images_per_s is not None
            and check.agreement >= AUTO_MIN_AGREEMENT and check.accuracy_drop <= AUTO_MAX_ACCURACY_DROP
            and runtime in ("auto", check.runtime) and precision in ("auto", check.precision)
            and runtime_missing(check.runtime) is None)


def _verified(candidates: list[Path], runtime: str, precision: str) -> RuntimeCheck | None:
    """The fastest eligible check among ``candidates`` whose file on disk is the one that was verified."""
    machine = machine_id()
    eligible = [c for c in read_checks(candidates[0])
                if c.file in candidates and _eligible(c, runtime, precision, machine)]
    hashes = {f: file_sha256(f) for f in {c.file for c in eligible} if f.is_file()}
    # a file replaced or edited since it was verified is not the file the record speaks of
    current = [c for c in eligible if hashes.get(c.file) == c.sha256]
    return max(current, key=lambda c: c.images_per_s, default=None)


def choose(path: Path, runtime: str = "auto", device: str = "auto", precision: str = "auto") -> Choice:
    """Decide what runs ``path`` (see the module docstring).  Raises ConfigError for a request that cannot be
    met (``--precision int8`` with no int8 file, …)."""
    path = Path(path)
    if runtime != "auto":
        runtime_missing(runtime)  # an unknown name fails here, with the list of names
    if runtime == "auto" and (device == "cuda" or device == "auto" and _cuda_possible()):
        return Choice(path, "onnxruntime", precision, "CUDA is onnxruntime's")
    if device == "cuda" and runtime != "onnxruntime":
        raise ConfigError(f"--runtime {runtime} runs on the CPU; for --device cuda use --runtime onnxruntime")

    own = _file_precision(path)
    candidates = [path]
    if own == "fp32" and precision in ("auto", "int8"):  # a plain export: its verified variants may run instead
        candidates.append(variant_path(path, "int8"))
    found = _verified(candidates, runtime, precision) if path.is_file() else None
    if found is not None:
        return Choice(found.file, found.runtime, found.precision,
                      f"{found.runtime} {found.precision} on {found.file.name}: verified on this machine "
                      f"({found.agreement:.1%} top-1 agreement with PyTorch, fastest at "
                      f"{found.images_per_s:.1f} img/s)")
    if runtime != "auto":
        chosen, why = runtime, "asked for"
    elif precision in ("bf16", "fp16"):  # on a CPU only OpenVINO computes a float32 file in reduced precision
        chosen, why = "openvino", f"--precision {precision} on the CPU"
    else:
        chosen, why = _default_cpu_runtime(path)
    if precision == "int8" and own != "int8":
        sibling = variant_path(path, "int8")
        if not sibling.is_file():
            raise ConfigError(f"--precision int8: {path.name} is {own} and there is no {sibling.name} beside it; "
                              "write one with clf-export --int8")
        return Choice(sibling, chosen, "int8", f"{chosen} int8 on {sibling.name} ({why}; --precision int8)")
    shown = own if precision == "auto" else precision
    return Choice(path, chosen, precision, f"{chosen} {shown} on {path.name} ({why})")
