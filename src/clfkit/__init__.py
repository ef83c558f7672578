"""clfkit: a folder of labelled photos to a fast, verified ONNX image classifier.

The notebook API (:mod:`clfkit.api`): ``split_folder`` → ``train_model`` → ``export_onnx`` → ``load_model`` →
``model.predict(...)``, and ``read_metrics``.  The heart of the package is one preprocessing contract,
:class:`clfkit.spec.ModelSpec`, created once at training time, stored in every artifact and executed by one
implementation (:mod:`clfkit.vision.preprocess`).  Importing ``clfkit`` never imports torch; neither do
``load_model``, ``read_metrics`` and everything under :mod:`clfkit.runtime`.
"""
from __future__ import annotations

from clfkit._lazy import lazy_attributes
from clfkit.errors import ClfError, ImageError
from clfkit.spec import ModelSpec
from clfkit.version import __version__

__all__ = ["ClfError", "ImageError", "ModelSpec", "__version__", "split_folder", "train_model", "export_onnx",
           "load_model", "read_metrics", "TrainConfig", "Engine", "Prediction"]
_LAZY = {
    "split_folder": "clfkit.api", "train_model": "clfkit.api", "export_onnx": "clfkit.api",
    "load_model": "clfkit.api", "read_metrics": "clfkit.api",
    "TrainConfig": "clfkit.train.config", "Engine": "clfkit.runtime.engine", "Prediction": "clfkit.runtime.records",
}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
