"""Calibration as clf-infer and clf-serve show it: the --report's ECE before and after the model's temperature
(checked against onnxruntime's raw output, computed here), reliability.png, and the one line a version-1 model
(no temperature) gets."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner
from helpers import make_labelled_folder
from tiny_onnx import SPEC, calibrated_and_version1

from clfkit.cli.infer import infer_cmd
from clfkit.cli.serve import serve_cmd
from clfkit.report.calibration import expected_calibration_error
from clfkit.runtime.pipeline import view_pixels
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch

T = 8.0  # softens the tiny model's decisive logits a lot, so the ECE before and after differ clearly
NOTE = "uncalibrated (spec version 1, no temperature): probabilities are the raw softmax"


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory) -> dict[str, Path]:
    return calibrated_and_version1(tiny.model, tmp_path_factory.mktemp("cli-calibrated"), T)


@pytest.fixture(scope="module")
def labelled(tmp_path_factory) -> Path:
    return make_labelled_folder(tmp_path_factory.mktemp("cli-labelled") / "test", {"cat": 4, "dog": 4, "owl": 4})


def _invoke(command, *args):
    return CliRunner().invoke(command, [str(a) for a in args], catch_exceptions=False)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _raw_logits(model: Path, labelled: Path, views: int) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's logits (N, V, C) for every labelled photo, in clf-infer's file order, and the labels."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    files = sorted(labelled.rglob("*.jpg"))
    logits = [session.run(None, {"images": normalize_batch(view_pixels(SPEC, "float32_nchw", load_rgb(f), views),
                                                            SPEC)})[0] for f in files]
    return np.stack(logits), np.array([SPEC.class_names.index(f.parent.name) for f in files])


def test_report_has_ece_before_and_after_the_temperature(models, labelled, tmp_path):
    report = tmp_path / "report"
    result = _invoke(infer_cmd, "-m", models["calibrated"], labelled, "-o", tmp_path / "p.csv", "--report", report,
                     "--tta", "3", "--device", "cpu", "--runtime", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert "uncalibrated" not in result.output
    metrics = json.loads((report / "metrics.json").read_text())
    logits, labels = _raw_logits(models["calibrated"], labelled, 3)
    assert metrics["temperature"] == T and metrics["calibrated"] is True
    # ece: of the probabilities written (the TTA mean of the tempered views); the center view before and after T
    assert metrics["ece"] == pytest.approx(expected_calibration_error(_softmax(logits / T).mean(1), labels), abs=1e-6)
    assert metrics["ece_no_tta"] == pytest.approx(expected_calibration_error(_softmax(logits[:, 0] / T), labels),
                                                  abs=1e-6)
    assert metrics["ece_uncalibrated"] == pytest.approx(expected_calibration_error(_softmax(logits[:, 0]), labels),
                                                        abs=1e-6)
    assert abs(metrics["ece_uncalibrated"] - metrics["ece_no_tta"]) > 0.05  # T changed the probabilities
    assert sum(metrics["reliability"]["uncalibrated"]["count"]) == len(labels) == 12
    assert (report / "reliability.png").stat().st_size > 1000
    assert f"calibration: temperature {T:.3f}" in result.output


def test_a_version_1_model_says_so_once_and_reports_the_raw_softmax(models, labelled, tmp_path):
    report = tmp_path / "report"
    result = _invoke(infer_cmd, "-m", models["v1"], labelled, "-o", tmp_path / "p.csv", "--report", report,
                     "--device", "cpu", "--runtime", "onnxruntime")
    assert result.exit_code == 0, result.output
    assert result.output.count(NOTE) == 1 and f"clf-infer: {models['v1']}: {NOTE}" in result.output
    metrics = json.loads((report / "metrics.json").read_text())
    logits, labels = _raw_logits(models["v1"], labelled, 1)
    assert metrics["temperature"] == 1.0 and metrics["calibrated"] is False
    assert metrics["ece"] == metrics["ece_uncalibrated"] == metrics["ece_no_tta"]
    assert metrics["ece"] == pytest.approx(expected_calibration_error(_softmax(logits[:, 0]), labels), abs=1e-6)
    assert "calibration: none (spec version 1, raw softmax)" in result.output


def test_clf_serve_says_so_once_for_a_version_1_model(models):
    with socket.socket() as taken:  # the model loads, then the port is refused: no server left running
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = _invoke(serve_cmd, "--model", models["v1"], "--device", "cpu", "--port", taken.getsockname()[1])
    assert result.exit_code == 1
    assert result.output.count(NOTE) == 1 and f"clf-serve: {models['v1']}: {NOTE}" in result.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        result = _invoke(serve_cmd, "--model", models["calibrated"], "--device", "cpu", "--port",
                         taken.getsockname()[1])
    assert "uncalibrated" not in result.output
