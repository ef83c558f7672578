"""The model's temperature at inference: the Engine's probabilities are softmax(logits / T) of what onnxruntime
itself outputs, TTA averages the tempered views, and a version-1 file (no temperature) runs on the raw softmax
and says so once.

The models are the tiny TinyNet exported twice for real: with a v2 spec carrying T, and with the version-1 spec
clfkit's first release wrote (no temperature in the metadata JSON).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from helpers import make_labelled_folder
from tiny_onnx import calibrated_and_version1

from clfkit.api import load_model
from clfkit.artifacts.onnx_meta import META_SPEC, read_metadata, read_props
from clfkit.runtime.engine import Engine
from clfkit.runtime.pipeline import view_pixels
from clfkit.vision.images import load_rgb

T = 2.5
NOTE = "uncalibrated (spec version 1, no temperature): probabilities are the raw softmax"


@pytest.fixture(scope="module")
def models(tiny, tmp_path_factory) -> dict[str, Path]:
    return calibrated_and_version1(tiny.model, tmp_path_factory.mktemp("calibrated-models"), T)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = make_labelled_folder(tmp_path_factory.mktemp("photos") / "test", {"cat": 3, "dog": 3, "owl": 3})
    return sorted(root.rglob("*.jpg"))


def _softmax(z: np.ndarray) -> np.ndarray:  # written out here, independent of clfkit.vision.postprocess
    z = np.asarray(z, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ort_logits(path: Path, photo: Path, views: int) -> np.ndarray:
    """onnxruntime's own raw output for one photo's ``views`` TTA views (V, C)."""
    engine = Engine.from_onnx(path, device="cpu", runtime="onnxruntime")
    inputs = engine.prepare(view_pixels(engine.spec, engine.input_format, load_rgb(photo), views))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": inputs})[0]


def test_the_engine_applies_the_temperature(models, photos):
    engine = Engine.from_onnx(models["calibrated"], device="cpu", runtime="onnxruntime")
    assert engine.spec.temperature == T and engine.calibration_note is None
    preds = list(engine.predict(photos, keep_probs=True, workers=0))
    for photo, pred in zip(photos, preds):
        logits = _ort_logits(models["calibrated"], photo, 1)[0]
        np.testing.assert_allclose(pred.probs_no_tta, _softmax(logits / T), atol=1e-6)
        np.testing.assert_allclose(pred.probs, pred.probs_no_tta)
        assert np.abs(pred.probs - _softmax(logits)).max() > 1e-3  # T really changed the probabilities
        assert pred.index == int(np.argmax(logits))  # and no prediction


def test_tta_is_the_mean_of_the_tempered_views(models, photos):
    engine = Engine.from_onnx(models["calibrated"], device="cpu", runtime="onnxruntime")
    for photo, pred in zip(photos, engine.predict(photos, tta=4, keep_probs=True, workers=0)):
        logits = _ort_logits(models["calibrated"], photo, 4)  # (4, C)
        np.testing.assert_allclose(pred.probs, _softmax(logits / T).mean(axis=0), atol=1e-6)
        np.testing.assert_allclose(pred.probs_no_tta, _softmax(logits[0] / T), atol=1e-6)


def test_a_version_1_file_runs_on_the_raw_softmax_and_says_so_once(models, photos):
    props = read_props(models["v1"])
    stored = json.loads(props[META_SPEC])
    assert stored["schema_version"] == 1 and "temperature" not in stored  # what the first release wrote
    assert not read_metadata(models["v1"]).spec.calibrated
    lines: list[str] = []
    engine = Engine.from_onnx(models["v1"], device="cpu", runtime="onnxruntime", log=lines.append)
    assert [line for line in lines if "uncalibrated" in line] == [f"{models['v1']}: {NOTE}; train and export it "
                                                                  "again with this clfkit to calibrate them"]
    for photo, pred in zip(photos, engine.predict(photos, keep_probs=True, workers=0)):
        np.testing.assert_allclose(pred.probs, _softmax(_ort_logits(models["v1"], photo, 1)[0]), atol=1e-6)
    lines.clear()
    Engine.from_onnx(models["calibrated"], device="cpu", runtime="onnxruntime", log=lines.append)
    assert not [line for line in lines if "uncalibrated" in line]


def test_load_model_logs_the_note_once(models, caplog):
    with caplog.at_level(logging.WARNING, logger="clfkit"):
        load_model(models["v1"], device="cpu", runtime="onnxruntime")
    assert len([r for r in caplog.records if NOTE in r.getMessage()]) == 1
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="clfkit"):
        load_model(models["calibrated"], device="cpu", runtime="onnxruntime")
    assert not [r for r in caplog.records if "uncalibrated" in r.getMessage()]
