"""The notebook API (clfkit.api): thin over the commands' library functions, one-line errors, torch-free where
it says so."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

import clfkit
from clfkit.errors import ClfError, ConfigError, DataError


def test_read_metrics_reads_a_run_folder_or_a_report_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text(json.dumps({"val_acc": 0.9, "test": {"accuracy": 0.8}}))
    assert clfkit.read_metrics(tmp_path / "run")["test"]["accuracy"] == 0.8
    assert clfkit.read_metrics(tmp_path / "run" / "metrics.json")["val_acc"] == 0.9
    with pytest.raises(DataError, match="no metrics.json there"):
        clfkit.read_metrics(tmp_path)
    with pytest.raises(ConfigError, match="no such file or folder"):
        clfkit.read_metrics(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(DataError, match="not a readable metrics file"):
        clfkit.read_metrics(tmp_path / "bad.json")


def test_options_are_validated_like_the_commands(tmp_path):
    with pytest.raises(ConfigError, match="--epochs must be at least 1"):
        clfkit.train_model(tmp_path, epochs=0)
    with pytest.raises(ClfError, match="folder not found"):
        clfkit.split_folder(tmp_path / "missing", tmp_path / "data")
    with pytest.raises(ClfError, match="model not found"):
        clfkit.load_model(tmp_path / "none.onnx")


def test_importing_clfkit_and_its_torch_free_functions_never_imports_torch():
    code = ("import sys, clfkit\n"
            "from clfkit import load_model, read_metrics, split_folder, Engine, Prediction, ModelSpec\n"
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
