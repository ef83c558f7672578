"""The checkpoint format: ``model.pt`` (the best model) and ``last.pt`` (resume state), and the one safe loader.

Both are plain dicts of tensors, numbers, strings and lists, so they load with
``torch.load(weights_only=True)``: a checkpoint downloaded from somewhere can never run code on load.
``model.pt`` carries its ModelSpec; everything downstream (export, bench) reads the spec from it.  Rebuilding the
model from a checkpoint is :func:`clfkit.models.classifier.load_checkpoint`.
"""
from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import torch

from clfkit.errors import CheckpointError, first_line
from clfkit.io import atomic_path
from clfkit.spec import ModelSpec
from clfkit.version import __version__

__all__ = ["CHECKPOINT_FORMAT", "RESUME_FORMAT", "CHECKPOINT_VERSION", "save_state", "save_checkpoint",
           "safe_load", "read_cache", "read_checkpoint", "unpickle_refusal"]

CHECKPOINT_FORMAT = "clfkit.checkpoint"  # model.pt: best weights + spec + config + metrics
RESUME_FORMAT = "clfkit.resume"  # last.pt: everything needed to continue training
CHECKPOINT_VERSION = 1


def save_state(obj: dict[str, Any], path: Path) -> Path:
    """torch.save through a temporary file + rename.

    Serialized in memory first and then written by Python: torch's own file writer turns a full disk into an
    opaque ``RuntimeError`` ("unexpected pos …"), while a Python write raises the real ``OSError`` (ENOSPC,
    EROFS) that the CLI reports in one line."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def safe_load(path: Path | str) -> Any:
    """``torch.load`` that never runs code: plain tensors, numbers, strings, lists and dicts only
    (``weights_only=True``), onto the CPU.  Raises what torch raises; :func:`unpickle_refusal` explains a refusal."""
    return torch.load(path, map_location="cpu", weights_only=True)


def read_cache(path: Path, key: str, log: Callable[[str], None], what: str) -> dict[str, Any] | None:
    """A training cache written by :func:`save_state` with its ``key``: the stored dict when ``path`` holds that
    key, else None (missing, another key, or damaged: a damaged cache is recomputed, never trusted, and
    ``log`` says "ignoring unreadable <what> <path>")."""
    if not path.exists():
        return None
    try:
        stored = safe_load(path)
        return stored if stored.get("key") == key else None
    except Exception:  # noqa: BLE001 - torch raises several types for a torn or foreign file
        log(f"ignoring unreadable {what} {path}")
        return None


def save_checkpoint(path: Path, model: torch.nn.Module, spec: ModelSpec, *, config: dict[str, Any] | None = None,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write ``model.pt``: weights (CPU tensors) + spec + how to rebuild the architecture."""
    arch = {
        "backbone": model.backbone_name,
        "head": model.head_kind,
        "num_features": int(model.num_features),
        "num_classes": int(spec.num_classes),
    }
    state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    return save_state({
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "clfkit_version": __version__,
        "spec": spec.to_dict(),
        "arch": arch,
        "config": dict(config or {}),
        "metrics": dict(metrics or {}),
        "state_dict": state,
    }, path)


def unpickle_refusal(exc: BaseException) -> str | None:
    """What ``torch.load(weights_only=True)`` refused, e.g. "Unsupported global: GLOBAL io.open …", or None
    when ``exc`` is not such a refusal (a corrupt pickle raises UnpicklingError too).

    torch's message starts with how to load the file anyway (weights_only=False, i.e. run its code) in terminal
    escapes; a user needs only the line that names the object the file wanted to create."""
    if not isinstance(exc, pickle.UnpicklingError):
        return None
    for line in str(exc).splitlines():
        _, found, rest = line.partition("WeightsUnpickler error:")
        rest = rest.strip()
        # "Unsupported global: GLOBAL io.open …" names code; "Unsupported operand 110" is just corrupt data.
        if found and rest and not rest.startswith("Unsupported operand"):
            return rest.split(". ")[0][:200]
    return None


def read_checkpoint(path: Path, expected_format: str = CHECKPOINT_FORMAT) -> dict[str, Any]:
    """Load a checkpoint dict safely (weights_only) and check it is one of ours."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass the model.pt file inside a clf-train run folder")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (not a torch.save zip archive; corrupt, "
                              "truncated or another kind of file)")
    try:
        obj = safe_load(path)
    except pickle.UnpicklingError as exc:
        refused = unpickle_refusal(exc)
        if refused is None:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): "
                                  f"{first_line(exc, 200)}") from None
        raise CheckpointError(
            f"{path}: refused to load: the file needs to run code to unpickle (only plain weights are "
            f"accepted, torch.load weights_only=True): {refused}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, ImportError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated?): "
                              f"{first_line(exc, 200)}") from None
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        kind = "a clf-train model.pt" if expected_format == CHECKPOINT_FORMAT else "a clf-train last.pt"
        raise CheckpointError(f"{path}: not {kind} (no clfkit format marker); only checkpoints written by "
                              "clf-train are accepted")
    if obj.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {obj.get('format_version')!r} is not supported "
                              f"by this clfkit (reads {CHECKPOINT_VERSION})")
    for key in ("spec", "arch", "state_dict"):
        if key not in obj:
            raise CheckpointError(f"{path}: checkpoint has no `{key}`; it is incomplete")
    # weights_only admits any plain structure: check the shapes of what is used, so a damaged or hand-made file
    # is one clear line, not a traceback from deep inside the loader.
    for key in ("spec", "arch", "state_dict", "config", "metrics"):
        if key in obj and not isinstance(obj[key], dict):
            raise CheckpointError(f"{path}: checkpoint field `{key}` is a {type(obj[key]).__name__}, not a "
                                  "mapping; the file is damaged or was not written by clf-train")
    bad = [k for k, v in obj["state_dict"].items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: `state_dict` entries that are not named tensors: {bad[:5]!r}; the file is "
                              "damaged or was not written by clf-train")
    return obj
