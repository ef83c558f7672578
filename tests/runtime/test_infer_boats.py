"""On real boats photos: the ONNX engine predicts what the PyTorch model predicts (skipped without ../shared)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clfkit.export.graph import export_model
from clfkit.runtime import Engine
from clfkit.spec import ModelSpec
from clfkit.models.classifier import build_classifier
from tiny_onnx import torch_probs

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PER_CLASS = 2


@pytest.fixture(scope="module")
def boats_model(tmp_path_factory):
    classes = ("buoy", "cruise_ship", "ferry_boat", "freight_boat", "gondola", "inflatable_boat", "kayak",
               "paper_boat", "sailboat")
    torch.manual_seed(0)
    model, defaults = build_classifier("efficientnet_lite0", len(classes), pretrained=True)  # packaged, offline
    model.eval()
    spec = ModelSpec(class_names=classes, backbone="efficientnet_lite0", **defaults.spec_fields())
    return model, spec, export_model(model, spec, tmp_path_factory.mktemp("boats") / "model.onnx")


@pytest.mark.parametrize("tta", [0, 2])
def test_onnx_predictions_equal_pytorch_on_boats(boats_dir: Path, boats_model, tta):
    model, spec, onnx_path = boats_model
    photos = [p for c in spec.class_names for p in sorted((boats_dir / c).glob("*.jpg"))[:PER_CLASS]]
    engine = Engine.from_onnx(onnx_path, device="cpu")
    preds = list(engine.predict(photos, tta=tta, batch_size=8, keep_probs=True))
    assert all(p.ok for p in preds)
    for pred in preds:
        expected = torch_probs(model, spec, Path(pred.path), tta)
        np.testing.assert_allclose(pred.probs, expected, atol=1e-4)
        top2 = np.sort(expected)[-2:]
        if top2[1] - top2[0] > 1e-3:  # a near-tie may legitimately flip between backends
            assert pred.index == int(np.argmax(expected)), pred.path
