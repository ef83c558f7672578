"""Classifier = backbone (pooled features) + head (logits).

The split is explicit because training on CPU usually caches frozen backbone features once and trains only
the head: ``classify(features(x))`` is exactly ``forward(x)``, so a head trained on cached features drops into
the assembled model unchanged.  The model outputs logits (no softmax): the loss, the exported ONNX graph and
the engine agree on that (``ModelSpec.output == "logits"``).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from clfkit.artifacts.checkpoint import read_checkpoint
from clfkit.errors import CheckpointError, ConfigError, SpecError, first_line
from clfkit.models.names import HEADS
from clfkit.models.registry import BackboneDefaults, create_backbone
from clfkit.spec import ModelSpec

__all__ = ["HEADS", "MLP_HIDDEN", "MLP_DROPOUT", "Classifier", "create_head", "build_classifier",
           "LoadedCheckpoint", "load_checkpoint"]


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
    """A Classifier on a registry backbone (see :mod:`clfkit.models.registry`) and the backbone's defaults.

    ``pretrained=False`` needs no network (checkpoint loading); the head is always freshly initialised.
    """
    # Fail on bad options before building (and maybe downloading) the backbone.
    _check_num_classes(num_classes)
    if head not in HEADS:
        create_head(head, 1, 1)
    module, num_features, defaults = create_backbone(backbone, pretrained=pretrained, weights=weights)
    model = Classifier(module, num_features, num_classes, head, backbone_name=backbone.strip())
    return model, defaults


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module  # a Classifier in eval mode, on the CPU
    spec: ModelSpec
    arch: dict[str, Any]  # backbone, head, num_features, num_classes
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def load_checkpoint(path: Path) -> LoadedCheckpoint:
    """Rebuild the trained Classifier from ``model.pt`` (offline: no pretrained download) in eval mode."""
    obj = read_checkpoint(path)
    try:
        spec = ModelSpec.from_dict(obj["spec"])
    except SpecError as exc:
        raise CheckpointError(f"{path}: invalid spec inside the checkpoint: {exc}") from None
    arch = obj["arch"]
    state = obj["state_dict"]
    kinds = {"backbone": str, "head": str, "num_classes": int}
    wrong = [k for k, kind in kinds.items() if not isinstance(arch.get(k), kind) or isinstance(arch.get(k), bool)]
    if wrong:
        raise CheckpointError(f"{path}: checkpoint field `arch` lacks a valid {', '.join(wrong)} "
                              f"(got {arch!r:.120}); the file is damaged or was not written by clf-train")
    num_classes = arch["num_classes"]
    head_out = [v.shape[0] for k, v in state.items() if k.startswith("head") and k.endswith("weight")]
    if num_classes != spec.num_classes or (head_out and head_out[-1] != spec.num_classes):
        raise CheckpointError(
            f"{path}: the head outputs {head_out[-1] if head_out else num_classes} classes but the spec names "
            f"{spec.num_classes}; refusing a checkpoint whose labels would not match its outputs"
        )
    try:
        model, _ = build_classifier(arch["backbone"], spec.num_classes, arch["head"], pretrained=False)
    except (ConfigError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{path}: cannot rebuild the checkpoint's model (backbone {arch['backbone']!r}, "
                              f"head {arch['head']!r}): {first_line(exc)}") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the {arch['backbone']} architecture: "
                              f"{first_line(exc)}") from None
    model.eval()
    return LoadedCheckpoint(model=model, spec=spec, arch=dict(arch), config=dict(obj.get("config", {})),
                            metrics=dict(obj.get("metrics", {})), path=Path(path))

