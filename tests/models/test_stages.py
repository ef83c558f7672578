"""Backbones as chains of blocks: the composition must be the backbone's own forward, or no chain at all."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from clfkit.models.classifier import build_classifier
from clfkit.models.registry import create_backbone
from clfkit.models.stages import Prefix, Tail, backbone_blocks


@pytest.mark.parametrize("name", ["efficientnet_lite0", "timm:resnet10t", "timm:mobilenetv3_small_050"])
def test_timm_backbones_split_into_blocks_that_compose_to_the_forward(name: str) -> None:
    torch.manual_seed(0)
    backbone, _, _ = create_backbone(name, pretrained=False)
    blocks = backbone_blocks(backbone)
    assert blocks is not None and len(blocks) >= 5
    backbone.eval()
    x = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        for cut in (1, len(blocks) // 2, len(blocks) - 1):
            head = nn.Identity()
            out = Tail(blocks, cut, head)(Prefix(blocks, cut)(x))
            torch.testing.assert_close(out, backbone(x), rtol=1e-4, atol=1e-5)


def test_blocks_are_the_models_own_modules_not_copies() -> None:
    model, _ = build_classifier("efficientnet_lite0", 3, pretrained=False)
    blocks = backbone_blocks(model.backbone)
    assert blocks is not None
    own = {id(m) for m in model.modules()}
    assert all(id(p) in {id(q) for q in model.parameters()} for b in blocks[1:-1] for p in b.parameters())
    assert all(id(b) in own for b in blocks[1:-1])


def test_torchvision_resnet_and_efficientnet_split() -> None:
    import torchvision

    for ctor in (torchvision.models.resnet18, torchvision.models.efficientnet_b0):
        model = ctor()
        model.fc = nn.Identity() if hasattr(model, "fc") else None  # type: ignore[assignment]
        if not hasattr(model, "fc") or model.fc is None:
            model.classifier = nn.Identity()
        assert backbone_blocks(model) is not None, ctor.__name__


class _Odd(nn.Module):
    """A forward that does more than its parts (a skip around everything): must not be cut."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.maxpool = nn.Identity()
        for i in range(1, 5):
            setattr(self, f"layer{i}", nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn1(self.conv1(x))
        h = self.layer4(self.layer3(self.layer2(self.layer1(h)))) + h
        return self.avgpool(h).flatten(1)


def test_a_forward_that_differs_from_its_parts_is_refused() -> None:
    assert backbone_blocks(_Odd()) is None
    assert backbone_blocks(nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())) is None
