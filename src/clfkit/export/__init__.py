"""Export a clf-train checkpoint to ONNX, stamp the ModelSpec into its metadata, verify it, quantize it.

``from clfkit.export import export_checkpoint`` is the library entry point (the ``clf-export`` command calls
it).  Importing this package is cheap and torch-free; torch loads on first use of ``export_checkpoint``.
Reading the metadata back is :mod:`clfkit.artifacts.onnx_meta` (no torch).
"""
from __future__ import annotations

from clfkit._lazy import lazy_attributes

__all__ = ["export_checkpoint", "ExportResult"]
_LAZY = {"export_checkpoint": "clfkit.export.api", "ExportResult": "clfkit.export.api"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
