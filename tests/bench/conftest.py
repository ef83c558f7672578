"""The fixture of the benchmark tests: ``bench_run``, a tiny clf-train-style run exported to ONNX (fp32, int8,
uint8-input), built once per session.

The model is timm's 100k-parameter ``test_efficientnet`` (random init) at 32 px, so ``load_checkpoint``
rebuilds it and every benchmark step runs for real in a few seconds.  Accuracy is meaningless here; the
tests check the harness, never a timing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from helpers import make_labelled_folder, torch_threads

from clfkit.export.graph import export_model
from clfkit.artifacts.verify_record import variant_path
from clfkit.export.quantize import quantize_int8
from clfkit.spec import ModelSpec
from clfkit.artifacts.checkpoint import save_checkpoint
from clfkit.models.classifier import build_classifier

BACKBONE = "timm:test_efficientnet"
CLASSES = ("cat", "dog", "owl")
SPEC = ModelSpec(class_names=CLASSES, input_size=32, resize_size=36, backbone=BACKBONE)
IMAGE_SIZE = (48, 40)


@dataclass(frozen=True)
class BenchRun:
    data: Path  # clf-split layout: data/{train,val,test}/<class>/*.jpg
    checkpoint: Path
    onnx: Path
    int8: Path
    uint8: Path  # --embed-preprocess export


def _build(root: Path) -> BenchRun:
    data = root / "data"
    make_labelled_folder(data / "train", {"cat": 4, "dog": 4, "owl": 4}, size=IMAGE_SIZE, seed=1)
    make_labelled_folder(data / "val", {"cat": 2, "dog": 2, "owl": 2}, size=IMAGE_SIZE, seed=2)
    make_labelled_folder(data / "test", {"cat": 4, "dog": 3, "owl": 3}, size=IMAGE_SIZE, seed=3)
    torch.manual_seed(0)
    model, _ = build_classifier(BACKBONE, len(CLASSES), "linear", pretrained=False)
    model.eval()
    checkpoint = save_checkpoint(root / "run" / "model.pt", model, SPEC, config={"data": str(data)})
    onnx = export_model(model, SPEC, root / "model.onnx")
    calibration = sorted((data / "train").rglob("*.jpg"))
    int8 = quantize_int8(onnx, variant_path(onnx, "int8"), calibration, SPEC)
    uint8 = export_model(model, SPEC, root / "model-uint8.onnx", embed_preprocess=True)
    return BenchRun(data=data, checkpoint=checkpoint, onnx=onnx, int8=int8, uint8=uint8)


@pytest.fixture(scope="session")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> BenchRun:
    with torch_threads(1):
        return _build(tmp_path_factory.mktemp("bench-run"))
