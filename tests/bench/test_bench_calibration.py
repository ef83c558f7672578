"""clf-bench and the spec's temperature: the PyTorch rows turn logits into probabilities with the same
temperature as the clfkit (Engine) rows, so every row's probabilities mean the same thing."""
from __future__ import annotations

import time

import numpy as np
from helpers import make_labelled_folder, torch_threads
from tiny_onnx import SPEC

from clfkit.bench.backends import engine_folder_run, timed_folder_run
from clfkit.bench.baseline import torch_backend
from clfkit.export.graph import export_model
from clfkit.runtime.engine import Engine

T = 1.8


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_timed_folder_run_tempers_each_view_then_averages():
    logits = np.random.default_rng(0).normal(0, 3, (6, 4))  # 3 images x 2 views, views of one image adjacent
    run = timed_folder_run(iter([logits]), 2, 4, time.perf_counter(), temperature=T)
    views = _softmax(logits / T).reshape(3, 2, 4)
    np.testing.assert_allclose(run.probs, views.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(run.probs_no_tta, views[:, 0], atol=1e-6)


def test_the_pytorch_row_and_the_engine_row_give_the_same_calibrated_probabilities(tiny, tmp_path):
    spec = SPEC.with_temperature(T)
    onnx = export_model(tiny.model, spec, tmp_path / "calibrated.onnx")
    photos = sorted(make_labelled_folder(tmp_path / "photos", {"cat": 2, "dog": 2, "owl": 2}).rglob("*.jpg"))
    engine = Engine.from_onnx(onnx, device="cpu", runtime="onnxruntime")
    ours = engine_folder_run(engine, photos, batch_size=4, tta=2, workers=0)
    with torch_threads(1):
        theirs = torch_backend(tiny.model, tmp_path / "model.pt", "fp32", "cpu").folder_run(
            photos, spec, batch_size=4, tta=2, decode_workers=0, loader_workers=0)
    np.testing.assert_allclose(theirs.probs, ours.probs, atol=1e-5)
    np.testing.assert_allclose(theirs.probs_no_tta, ours.probs_no_tta, atol=1e-5)
    untempered = engine_folder_run(Engine.from_onnx(tiny.onnx, device="cpu", runtime="onnxruntime"), photos,
                                   batch_size=4, tta=2, workers=0)
    assert np.abs(untempered.probs - ours.probs).max() > 1e-3  # the temperature is really in both rows
