"""Names and layout of what clfkit writes, shared by the writers and the readers.  No torch import.

ONNX metadata (``ModelProto.metadata_props``, readable by any ONNX runtime, e.g. onnxruntime's
``session.get_modelmeta().custom_metadata_map``):

=========================  ==================================================================================
key                        value
=========================  ==================================================================================
``clfkit.spec``            the ModelSpec as JSON (``schema_version`` inside): class names, sizes, mean/std …
``class_names``            a plain JSON list of class names, index = logit position (for other tools)
``clfkit.input_format``    ``float32_nchw`` (normalized float input) or ``uint8_nhwc`` (resized+cropped pixels;
                           /255, mean/std and the layout change happen inside the graph)
``clfkit.precision``       ``fp32``, ``fp16`` or ``int8`` (inputs and outputs are float32 in every variant)
``clfkit.version``         the clfkit version that wrote the file
=========================  ==================================================================================
"""
from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = [
    "META_SPEC", "META_CLASS_NAMES", "META_INPUT_FORMAT", "META_PRECISION", "META_VERSION",
    "INPUT_FORMATS", "INPUT_NAME", "OUTPUT_NAME", "CHECKPOINT_FORMAT", "RESUME_FORMAT", "atomic_path",
    "check_writable",
]

META_SPEC = "clfkit.spec"
META_CLASS_NAMES = "class_names"
META_INPUT_FORMAT = "clfkit.input_format"
META_PRECISION = "clfkit.precision"
META_VERSION = "clfkit.version"
INPUT_FORMATS = ("float32_nchw", "uint8_nhwc")
INPUT_NAME = "images"
OUTPUT_NAME = "logits"

CHECKPOINT_FORMAT = "clfkit.checkpoint"  # model.pt: best weights + spec + config + metrics
RESUME_FORMAT = "clfkit.resume"  # last.pt: everything needed to continue training


@contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; it replaces ``final`` only if the block succeeds.

    An interrupted writer (crash, SIGKILL, disk full) leaves the previous file or nothing at ``final``, never
    half a file (``os.replace`` is atomic within one folder).  The temporary name is hidden and unique per
    process; the caller creates the file, so it gets normal permissions.  The parent folder is created.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_writable(folder: str | os.PathLike, name: str) -> Path:
    """Create ``folder`` and prove a file can be made in it, before minutes of work whose results go there.

    Raises :class:`~clfkit.errors.OutputError` starting with ``name`` (the flag and path the user gave) when it
    cannot (read-only filesystem, no permission, a file in the way).  A folder that did not exist is left
    created; nothing else is left behind."""
    from clfkit.errors import OutputError

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".clfkit-write-check.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{name}: cannot write there ({exc.strerror or exc}); choose a folder you can write "
                          "to") from None
    return folder
