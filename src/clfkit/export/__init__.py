"""Export a clf-train checkpoint to ONNX, stamp the ModelSpec into its metadata, verify it, quantize it.

``from clfkit.export import export_checkpoint`` is the library entry point (the ``clf-export`` command calls
it).  Importing this package is cheap and torch-free; torch loads on first use of ``export_checkpoint``.
:mod:`clfkit.export.metadata` (read the metadata back) never imports torch.
"""
from __future__ import annotations

from typing import Any

__all__ = ["export_checkpoint", "ExportResult", "read_metadata", "OnnxMetadata"]


def __getattr__(name: str) -> Any:
    if name in ("export_checkpoint", "ExportResult"):
        from clfkit.export import api

        return getattr(api, name)
    if name in ("read_metadata", "OnnxMetadata"):
        from clfkit.export import metadata

        return getattr(metadata, name)
    raise AttributeError(f"module 'clfkit.export' has no attribute {name!r}")
