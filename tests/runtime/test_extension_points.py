"""The runtime's extension points work from outside the package: a new runtime and a new output format are
one class and one registration each, and everything above (Engine, run_infer, clf-infer's writers) uses them."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx_graphs import BRIGHTNESS_SPEC, brightness_model, gray_photos

from clfkit.artifacts.onnx_meta import INPUT_NAME, OUTPUT_NAME
from clfkit.errors import ConfigError
from clfkit.runtime import Engine, run_infer
from clfkit.runtime import registry, writers
from clfkit.runtime.backend import Backend
from clfkit.runtime.backend_ort import OrtBackend

SPEC = BRIGHTNESS_SPEC


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return brightness_model(tmp_path / "bright.onnx")


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    return gray_photos(tmp_path / "photos")


class NumpyBackend:
    """A second runtime: the same graph, computed by numpy (a stand-in for any library that runs ONNX)."""

    runtime = "numpy"
    device = "cpu"
    precision = "fp32"
    provider = "numpy (float64)"
    providers = ["numpy (float64)"]

    def __init__(self, path: Path) -> None:
        proto = onnx.load(str(path))
        self._props = {p.key: p.value for p in proto.metadata_props}
        self.input_name, self.output_name = INPUT_NAME, OUTPUT_NAME
        self.input_shape, self.input_type, self.output_shape = ["batch", 3, 8, 8], "float32", ["batch", 2]
        self.calls = 0

    def metadata(self):
        return self._props

    def run(self, batch: np.ndarray) -> np.ndarray:
        self.calls += 1
        return batch.mean(axis=(1, 2, 3))[:, None] * np.array([[-4.0, 4.0]])

    def model_call(self, batch):
        return lambda: self.run(batch)


@pytest.fixture
def numpy_runtime(monkeypatch):
    monkeypatch.setitem(registry._RUNTIMES, "numpy", registry.RuntimeInfo("numpy", lambda path, device, threads, log, precision:
                                                                             NumpyBackend(path), lambda: None))


def test_a_registered_runtime_runs_everything_above_it(model, photos, numpy_runtime, tmp_path):
    assert "numpy" in registry.runtime_names()
    engine = Engine.from_onnx(model, runtime="numpy")
    assert isinstance(engine.backend, Backend) and engine.runtime == "numpy"
    assert engine.spec == SPEC and engine.provider == "numpy (float64)"
    got = [p.label for p in engine.predict(photos, tta=2, batch_size=2)]
    assert got == ["dark", "light", "dark"]
    # ... and it agrees with onnxruntime on the same file, through the same pipeline
    reference = Engine.from_onnx(model, device="cpu")
    assert isinstance(reference.backend, OrtBackend) and isinstance(reference.backend, Backend)
    for a, b in zip(engine.predict(photos, keep_probs=True), reference.predict(photos, keep_probs=True)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    # clf-infer's library function writes what ran into every row
    result = run_infer(engine, [photos[0].parent], out=tmp_path / "p.csv", topk=1)
    rows = list(csv.DictReader(open(tmp_path / "p.csv", encoding="utf-8")))
    assert result.total == 3 and {r["provider"] for r in rows} == {"numpy (float64)"}
    assert engine.backend.calls >= 3


def test_an_unknown_runtime_is_one_clear_error(model):
    with pytest.raises(ConfigError, match=r"--runtime 'onnxruntme' is not one of .*onnxruntime.*Did you mean"):
        Engine.from_onnx(model, runtime="onnxruntme")


def test_an_unavailable_runtime_says_why(model, monkeypatch):
    monkeypatch.setitem(registry._RUNTIMES, "absent", registry.RuntimeInfo(
        "absent", lambda *a: None, lambda: "pip install absent-runtime"))
    with pytest.raises(ConfigError, match="--runtime absent: pip install absent-runtime"):
        Engine.from_onnx(model, runtime="absent")


class TsvWriter(writers.CsvWriter):
    suffix = ".tsv"

    def row(self, pred):
        return "\t".join([pred.path, pred.label or "", pred.error or "", self.provider]) + "\n"

    def header(self):
        return "path\tpred\terror\tprovider\n"


def test_a_registered_output_format_is_used_by_suffix(model, photos, tmp_path, monkeypatch):
    monkeypatch.setitem(writers.WRITERS, ".tsv", TsvWriter)
    engine = Engine.from_onnx(model, device="cpu")
    run_infer(engine, photos, out=tmp_path / "p.tsv")
    lines = (tmp_path / "p.tsv").read_text().splitlines()
    assert lines[0] == "path\tpred\terror\tprovider" and len(lines) == 4
    assert lines[2].split("\t")[1] == "light"
    with pytest.raises(ConfigError, match=r"name the file \.csv, \.jsonl, \.json or \.tsv"):
        writers.open_writer(tmp_path / "p.xlsx", 1, "x")
