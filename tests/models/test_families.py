"""Backbone families are a registry: a new family of names is one registration, and the classifier, the
checkpoint loader and the error messages all use it."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from clfkit.errors import ConfigError
from clfkit.models import registry
from clfkit.models.classifier import build_classifier
from clfkit.models.registry import BackboneDefaults, BackboneFamily, create_backbone


class Tiny(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3)
        self.fc = nn.Linear(width, 1000)  # an "ImageNet" classifier, stripped for features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def _build(name: str, pretrained: bool):
    width = int(name.removeprefix("tiny:"))

    def strip(model: nn.Module) -> int:
        model.fc = nn.Identity()
        return width

    return Tiny(width), BackboneDefaults(32, 36, "bilinear", (0.5,) * 3, (0.5,) * 3), strip


@pytest.fixture
def tiny_family(monkeypatch):
    family = BackboneFamily("tiny", owns=lambda name: name.startswith("tiny:"), build=_build,
                            names=lambda: ["tiny:4", "tiny:8"], syntax="a tiny conv as tiny:WIDTH")
    monkeypatch.setattr(registry, "_FAMILIES", [*registry._FAMILIES, family])
    return family


def test_a_registered_family_builds_backbones_and_classifiers(tiny_family):
    backbone, width, defaults = create_backbone("tiny:8", pretrained=False)
    assert width == 8 and defaults.input_size == 32
    assert backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 8)
    model, _ = build_classifier("tiny:8", num_classes=3, pretrained=False)
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 3) and model.backbone_name == "tiny:8"
    assert [f.name for f in registry.families()][:3] == ["packaged", "torchvision", "timm"]


def test_unknown_names_list_every_family_and_suggest_close_ones(tiny_family):
    with pytest.raises(ConfigError) as info:
        create_backbone("tiny8", pretrained=False)
    message = str(info.value)
    assert "Did you mean 'tiny:8'" in message
    assert "a tiny conv as tiny:WIDTH" in message and "any timm model as timm:NAME" in message
