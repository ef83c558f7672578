"""Training: the config, the run (``fit``), the two training paths, their epochs and the run reports.

``clfkit.train.fit(TrainConfig(...))`` trains and writes a run folder; rebuilding the trained model from its
``model.pt`` is :func:`clfkit.models.classifier.load_checkpoint`.  Importing this package is cheap; torch
loads when ``fit`` is first used.
"""
from __future__ import annotations

from clfkit._lazy import lazy_attributes

__all__ = ["fit", "FitResult", "TrainConfig"]
_LAZY = {"fit": "clfkit.train.trainer", "FitResult": "clfkit.train.trainer", "TrainConfig": "clfkit.train.config"}
__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
