"""clfkit: a folder of labelled photos to a fast, verified ONNX image classifier.

The heart of the package is one preprocessing contract, :class:`clfkit.spec.ModelSpec`, created once at
training time, stored in every artifact and executed by one implementation (:mod:`clfkit.preprocess`).
Importing ``clfkit`` (and ``clfkit.spec``, ``clfkit.images``, ``clfkit.preprocess``, ``clfkit.infer``) never
imports torch.
"""
from __future__ import annotations

from clfkit.errors import ClfError, ImageError
from clfkit.spec import ModelSpec

__version__ = "0.1.0"
__all__ = ["ClfError", "ImageError", "ModelSpec", "__version__"]
