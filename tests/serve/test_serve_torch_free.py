"""clf-serve must run where torch is not installed: import, build the app, answer /predict and /model."""
from __future__ import annotations

from helpers import assert_runs_without_torch


def test_serve_imports_and_answers_without_torch(tiny, photos):
    code = f"""
import sys
from pathlib import Path
import clfkit.serve, clfkit.serve.server, clfkit.serve.loadgen, clfkit.cli.serve
from clfkit.serve import ServeConfig, create_app
from clfkit.runtime import Engine
from fastapi.testclient import TestClient
engine = Engine.from_onnx({str(tiny.onnx)!r}, device="cpu")
with TestClient(create_app(engine, ServeConfig(tta=2))) as client:
    answer = client.post("/predict", files={{"file": ("a.jpg", Path({str(photos[0])!r}).read_bytes())}}).json()
    assert answer["pred"] == "cat", answer
    assert client.get("/model").json()["classes"] == ["cat", "dog", "owl"]
"""
    assert_runs_without_torch(code)
