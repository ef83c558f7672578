"""clf-train's calibration in every mode: one temperature fitted on the validation split's center view by the
final model, stored in model.pt and spec.json, and the test report's ECE before and after it.

Each run is checked against what the saved model itself computes: model.pt rebuilt and fed the val and test
photos through clfkit's eval preprocessing (as deployed) gives logits whose fitted temperature and test ECE are
the ones the run wrote.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import TINY, quiet, split_data

from clfkit.data.layout import read_split_folders
from clfkit.models.classifier import load_checkpoint
from clfkit.report.calibration import calibrate, expected_calibration_error
from clfkit.spec import ModelSpec
from clfkit.train.config import TrainConfig
from clfkit.train.summary import format_fit_summary
from clfkit.train.trainer import fit
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MODES = {
    "head": dict(mode="head", backbone="efficientnet_lite0", epochs=30, cache_views=1),
    "partial": dict(mode="partial", backbone="efficientnet_lite0", epochs=2, time_budget="10m", batch_size=8),
    "finetune": dict(mode="finetune", backbone=TINY, pretrained=False, epochs=2, batch_size=8),
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20 generated images per class: 9 validation and 9 test images in all."""
    return split_data(tmp_path_factory.mktemp("calibration"), per_class=20)


@pytest.fixture(scope="module", params=list(MODES))
def run(request, data: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp(f"calibration-{request.param}") / "run"
    config = TrainConfig(data=data, out=out, input_size=32, workers=0, device="cpu", precision="fp32",
                         **MODES[request.param])
    log: list[str] = []
    return fit(config, progress=False, log=log.append), log


def _logits(checkpoint: Path, data: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    loaded = load_checkpoint(checkpoint)
    samples = read_split_folders(data).splits[split]
    x = torch.from_numpy(np.stack([preprocess(load_rgb(s.path), loaded.spec) for s in samples]))
    with torch.no_grad():
        return loaded.model(x).double().numpy(), np.array([s.label for s in samples])


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_the_temperature_is_stored_in_every_artifact(run) -> None:
    result, _ = run
    run_dir = result.run_dir
    saved = ModelSpec.from_dict(torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)["spec"])
    assert saved == ModelSpec.from_json((run_dir / "spec.json").read_text()) == result.spec
    assert saved.calibrated and saved.schema_version == 2
    report = json.loads((run_dir / "report" / "metrics.json").read_text())
    assert saved.temperature == result.metrics["temperature"] == report["temperature"]
    assert result.metrics["calibration"]["temperature"] == saved.temperature
    assert load_checkpoint(run_dir / "model.pt").spec == saved  # what clf-export will put in the ONNX file


def test_the_temperature_is_fitted_on_the_validation_center_view_of_the_final_model(run, data: Path) -> None:
    result, log = run
    logits, labels = _logits(result.run_dir / "model.pt", data, "val")
    expected = calibrate(logits, labels)
    assert result.spec.temperature == pytest.approx(expected.temperature, rel=1e-3)
    assert result.metrics["calibration"]["note"] == expected.note
    assert result.metrics["calibration"]["num_samples"] == len(labels) == 9
    assert any(line.startswith("calibration: ") for line in log)


def test_the_test_report_has_ece_before_and_after(run, data: Path) -> None:
    result, _ = run
    report_dir = result.run_dir / "report"
    report = json.loads((report_dir / "metrics.json").read_text())
    logits, labels = _logits(result.run_dir / "model.pt", data, "test")
    t = result.spec.temperature
    assert report["ece"] == pytest.approx(expected_calibration_error(_softmax(logits / t), labels), abs=1e-4)
    assert report["ece_uncalibrated"] == pytest.approx(expected_calibration_error(_softmax(logits), labels), abs=1e-4)
    assert result.metrics["test"]["ece"] == report["ece"]
    assert result.metrics["test"]["ece_uncalibrated"] == report["ece_uncalibrated"]
    assert (report_dir / "reliability.png").stat().st_size > 1000
    summary = format_fit_summary(result)
    assert f"temperature {t:.3f}" in summary
    assert f"test ECE {100 * report['ece_uncalibrated']:.2f} % → {100 * report['ece']:.2f} %" in summary


@pytest.mark.parametrize("run", ["head"], indirect=True)  # the two-epoch partial and finetune runs are too short
def test_head_mode_calibration_lowers_the_test_ece(run) -> None:  # for their test ECE to mean much
    result, _ = run
    report = json.loads((result.run_dir / "report" / "metrics.json").read_text())
    assert result.spec.temperature != 1.0
    assert report["ece"] <= report["ece_uncalibrated"]


def test_resume_accepts_a_run_started_with_a_version_1_spec(tmp_path: Path, data: Path) -> None:
    """A run killed under an older clfkit (its last.pt holds a version-1 spec) resumes and gets calibrated."""
    config = TrainConfig(data=data, out=tmp_path / "run", input_size=32, workers=0, device="cpu", precision="fp32",
                         **{**MODES["head"], "epochs": 3})
    fit(config, progress=False, log=quiet)
    last = tmp_path / "run" / "last.pt"
    state = torch.load(last, map_location="cpu", weights_only=True)
    state["spec"] = {k: v for k, v in state["spec"].items() if k != "temperature"} | {"schema_version": 1}
    state["epoch"], state["history"] = 2, state["history"][:2]
    torch.save(state, last)
    resumed = fit(TrainConfig(data=data, resume=tmp_path / "run"), progress=False, log=quiet)
    assert resumed.epochs_run == 3 and resumed.spec.calibrated
