"""clfkit.runtime must work where torch is not installed: import, open an engine, predict, write a report."""
from __future__ import annotations

from helpers import make_labelled_folder, assert_runs_without_torch


def test_infer_imports_and_runs_without_torch(tiny, tmp_path):
    root = make_labelled_folder(tmp_path / "test", {"cat": 2, "dog": 2, "owl": 1})
    code = f"""
import json, sys
from pathlib import Path
import clfkit.runtime, clfkit.cli.infer
assert "torch" not in sys.modules
from clfkit.runtime import Engine
engine = Engine.from_onnx({str(tiny.onnx)!r}, device="cpu")
preds = list(engine.predict(sorted(Path({str(root)!r}).rglob("*.jpg")), tta=3))
assert [p.label for p in preds] == ["cat", "cat", "dog", "dog", "owl"], preds
from click.testing import CliRunner
result = CliRunner().invoke(clfkit.cli.infer.infer_cmd, ["-m", {str(tiny.onnx_uint8)!r}, {str(root)!r},
    "-o", {str(tmp_path / "p.csv")!r}, "--report", {str(tmp_path / "report")!r}, "--visualize", "1", "--tta", "2"])
assert result.exit_code == 0, result.output
assert json.loads(Path({str(tmp_path / "report" / "metrics.json")!r}).read_text())["accuracy"] == 1.0
"""
    assert_runs_without_torch(code)
