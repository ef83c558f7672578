"""The whole flow on real boat photos: the deployed ONNX model scores exactly what training reported.

split (symlinked subset, nothing copied from ../shared) → fit (packaged EfficientNet-Lite0, frozen or partly
fine-tuned) →
export (verified on the val split) → onnxruntime inference on the test split with a report.  The accuracy in
clf-infer's metrics.json must equal the test accuracy in the training report: same images, same
preprocessing contract, no drift.  Skipped when the photos are absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clfkit.data.make_split import make_split
from clfkit.export import export_checkpoint
from clfkit.runtime import Engine
from clfkit.runtime.infer import run_infer
from clfkit.train.config import TrainConfig
from clfkit.train.trainer import fit

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSES = ("buoy", "gondola", "kayak", "paper_boat", "sailboat")
PER_CLASS = 24


# head: frozen features; partial (the CPU default): the last blocks fine-tuned on cached activations.
MODES = {"head": dict(mode="head", cache_views=1, epochs=25),
         "partial": dict(mode="partial", epochs=3, time_budget="60s")}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_onnx_accuracy_on_test_split_equals_training_report(boats_dir: Path, tmp_path: Path, mode: str) -> None:
    images = tmp_path / "images"
    for name in CLASSES:
        (images / name).mkdir(parents=True)
        for photo in sorted((boats_dir / name).glob("*.jpg"))[:PER_CLASS]:
            os.symlink(photo.resolve(), images / name / photo.name)
    make_split(images, tmp_path / "data", mode="symlink", progress=False)
    fitted = fit(TrainConfig(data=tmp_path / "data", out=tmp_path / "run", backbone="efficientnet_lite0",
                             device="cpu", precision="fp32", **MODES[mode]),
                 progress=False, log=lambda _m: None)
    trained = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())

    exported = export_checkpoint(tmp_path / "run" / "model.pt", tmp_path / "model.onnx")
    assert exported.passed, [r.format_table() for r in exported.reports]
    # The file itself, in fp32: "same images, same contract, no drift" is exact only there.  What --runtime auto
    # may run instead (a verified int8 file, OpenVINO bf16) agrees with PyTorch on the verify photos, not on
    # every test image (verified on this 20-image val split, auto's pick once scored 2 test images differently).
    engine = Engine.from_onnx(tmp_path / "model.onnx", device="cpu", runtime="onnxruntime", precision="fp32")
    result = run_infer(engine, [tmp_path / "data" / "test"], out=tmp_path / "preds.csv", report=tmp_path / "report")
    deployed = json.loads((tmp_path / "report" / "metrics.json").read_text())

    assert result.failed == 0
    assert deployed["num_samples"] == trained["num_samples"] == fitted.metrics["test"]["num_samples"]
    assert deployed["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-12)
    assert deployed["accuracy"] > 0.6  # 5 classes: chance is 0.2
    for name in CLASSES:
        assert deployed["per_class"][name]["recall"] == pytest.approx(trained["per_class"][name]["recall"])
