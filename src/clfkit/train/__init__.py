"""Training: backbones, the classifier head, the two training paths, checkpoints and run reports.

``clfkit.train.fit(config)`` trains and writes a run folder; ``clfkit.train.load_checkpoint(path)`` rebuilds
the trained model from its ``model.pt``.
"""
from __future__ import annotations

from typing import Any

__all__ = ["fit", "load_checkpoint", "TrainConfig", "FitResult"]


def __getattr__(name: str) -> Any:
    # Lazy: `import clfkit.train.config` must not pay for torch/timm imports it does not need.
    if name in ("fit", "FitResult"):
        from clfkit.train import fit as _fit

        return getattr(_fit, name)
    if name == "load_checkpoint":
        from clfkit.train.checkpoint import load_checkpoint

        return load_checkpoint
    if name == "TrainConfig":
        from clfkit.train.config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
