"""Classifier = backbone (pooled features) + head (logits).

The split is explicit because training on CPU usually caches frozen backbone features once and trains only
the head: ``classify(features(x))`` is exactly ``forward(x)``, so a head trained on cached features drops into
the assembled model unchanged.  The model outputs logits (no softmax): the loss, the exported ONNX graph and
the engine agree on that (``ModelSpec.output == "logits"``).
"""
from __future__ import annotations

import difflib
from pathlib import Path

import torch
from torch import nn

from clfkit.errors import ConfigError
from clfkit.train.backbones import BackboneDefaults, create_backbone

__all__ = ["HEADS", "MLP_HIDDEN", "MLP_DROPOUT", "Classifier", "create_head", "build_classifier"]

HEADS = ("linear", "mlp")
# The original pipeline's head: Linear(F, 256) → ReLU → Dropout(0.4) → Linear(256, C).
MLP_HIDDEN = 256
MLP_DROPOUT = 0.4


def create_head(kind: str, num_features: int, num_classes: int) -> nn.Module:
    """The head mapping features (B, F) → logits (B, C); ``kind`` is one of :data:`HEADS`."""
    if kind == "linear":
        return nn.Linear(num_features, num_classes)
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(num_features, MLP_HIDDEN),
            nn.ReLU(),
            nn.Dropout(MLP_DROPOUT),
            nn.Linear(MLP_HIDDEN, num_classes),
        )
    close = difflib.get_close_matches(str(kind), HEADS, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ConfigError(f"unknown --head {kind!r}; choose one of {', '.join(HEADS)}.{hint}")


def _check_num_classes(num_classes: object) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ConfigError(f"a classifier needs a whole number of classes >= 1, got {num_classes!r}")


class Classifier(nn.Module):
    """A backbone producing (B, F) features and a head producing (B, C) logits.

    ``backbone_name``, ``head_kind``, ``num_features`` and ``num_classes`` are what a checkpoint records to
    rebuild the same module with :func:`build_classifier` before loading its state dict.
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_features: int,
        num_classes: int,
        head: str = "linear",
        *,
        backbone_name: str = "",
    ) -> None:
        super().__init__()
        _check_num_classes(num_classes)
        self.backbone = backbone
        self.head = create_head(head, num_features, num_classes)
        self.backbone_name = backbone_name
        self.head_kind = head
        self.num_features = int(num_features)
        self.num_classes = num_classes

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalized pixels → (B, F) pooled backbone features."""
        return self.backbone(x)

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) features → (B, C) logits; the same head the assembled model uses."""
        return self.head(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(x))  # (B, C) logits


def build_classifier(
    backbone: str,
    num_classes: int,
    head: str = "linear",
    *,
    pretrained: bool = True,
    weights: Path | str | None = None,
) -> tuple[Classifier, BackboneDefaults]:
    """A Classifier on a registry backbone (see :mod:`clfkit.train.backbones`) and the backbone's defaults.

    ``pretrained=False`` needs no network (checkpoint loading); the head is always freshly initialised.
    """
    # Fail on bad options before building (and maybe downloading) the backbone.
    _check_num_classes(num_classes)
    if head not in HEADS:
        create_head(head, 1, 1)
    module, num_features, defaults = create_backbone(backbone, pretrained=pretrained, weights=weights)
    model = Classifier(module, num_features, num_classes, head, backbone_name=backbone.strip())
    return model, defaults
