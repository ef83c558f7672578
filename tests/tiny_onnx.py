"""A tiny classifier exported to ONNX (float and --embed-preprocess variants) for the runtime, clf-infer and
serve tests.

The session fixture ``tiny`` (tests/conftest.py) builds it once with :func:`build_tiny_models`; tests import
the constants and :func:`torch_probs` from here by name.  The model sees colour (a pooled-colour head, so
predictions match the generated classes of ``make_labelled_folder``) and layout (a small random conv branch,
so flips and crops change the logits and TTA parity means something).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clfkit.export.graph import export_model
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import stack_views
from clfkit.vision.tta import tta_views
from clfkit.spec import ModelSpec

CLASSES = ("cat", "dog", "owl")  # make_labelled_folder draws class k with colour channel k strongest
SPEC = ModelSpec(class_names=CLASSES, input_size=32, resize_size=36, backbone="tiny-test")


class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.Conv2d(8, 8, 3), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.layout = nn.Linear(8, num_classes)
        self.colour = nn.Linear(3, num_classes)
        with torch.no_grad():
            self.colour.weight.copy_(4 * torch.eye(num_classes, 3))
            self.colour.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) → (B, C)
        return self.colour(x.mean(dim=(2, 3))) + 0.5 * self.layout(self.conv(x))


@dataclass(frozen=True)
class TinyModels:
    model: TinyNet
    spec: ModelSpec
    onnx: Path  # float32_nchw
    onnx_uint8: Path  # uint8_nhwc (--embed-preprocess)


def build_tiny_models(folder: Path) -> TinyModels:
    """The seeded TinyNet exported into ``folder`` as model.onnx and model-uint8.onnx (--embed-preprocess)."""
    torch.manual_seed(0)
    model = TinyNet(len(CLASSES)).eval()
    onnx = export_model(model, SPEC, folder / "model.onnx")
    onnx_uint8 = export_model(model, SPEC, folder / "model-uint8.onnx", embed_preprocess=True)
    return TinyModels(model, SPEC, onnx, onnx_uint8)


def export_with_classes(model: TinyNet, folder: Path, class_names: tuple[str, ...]) -> Path:
    """The same network exported under other class names (e.g. a class named "unknown")."""
    spec = ModelSpec(class_names=class_names, input_size=SPEC.input_size, resize_size=SPEC.resize_size,
                     backbone=SPEC.backbone)
    return export_model(model, spec, folder / "model.onnx")


def calibrated_and_version1(model: TinyNet, folder: Path, temperature: float) -> dict[str, Path]:
    """The tiny model exported twice: with a fitted ``temperature`` (spec version 2) and as an old version-1
    artifact (no temperature), for the calibration tests."""
    from helpers import version1_spec

    return {"calibrated": export_model(model, SPEC.with_temperature(temperature), folder / "calibrated.onnx"),
            "v1": export_model(model, version1_spec(SPEC), folder / "v1.onnx")}


def torch_probs(model: nn.Module, spec: ModelSpec, path: Path, views: int) -> np.ndarray:
    """The PyTorch side of the parity tests: the same views (clfkit.vision.tta.tta_views), softmax, mean."""
    crops = tta_views(load_rgb(path), spec, max(1, views))
    with torch.no_grad():
        logits = model(torch.from_numpy(stack_views(crops, spec)))  # (V, C)
    return torch.softmax(logits.double(), dim=1).mean(0).numpy()
