"""clf-demo end to end: draw → split → train → export (verified) → infer with TTA and a report."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.cli.demo import demo_cmd


@pytest.mark.slow
def test_demo_runs_every_step_and_reports_accuracy(tmp_path: Path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(demo_cmd, ["--out", str(out), "--per-class", "10", "--epochs", "15", "--tta", "2"])
    assert result.exit_code == 0, result.output
    for name in ("images", "data/manifest.csv", "run/model.pt", "run/report/metrics.json", "model.onnx",
                 "model.verify.json", "predictions.csv", "report/metrics.json", "report/confusion_matrix.png",
                 "bench/report.md", "bench/results.json", "bench/latency.png"):
        assert (out / name).exists(), name
    verify = json.loads((out / "model.verify.json").read_text())
    assert verify["passed"] is True
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.5  # 4 shape classes: chance is 0.25
    assert "test accuracy (onnxruntime, TTA 2)" in result.output
    bench = json.loads((out / "bench" / "results.json").read_text())
    assert bench["speedup_e2e"] > 0 and bench["speedup_latency_b1"] > 0  # measured, not asserted fast
    assert "bench:" in result.output
    assert f"clf-serve --model {out / 'model.onnx'}" in result.output


def test_demo_refuses_a_non_empty_out(tmp_path: Path):
    (tmp_path / "x.txt").write_text("keep me")
    result = CliRunner().invoke(demo_cmd, ["--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "not empty" in result.output and "Traceback" not in result.output
    assert (tmp_path / "x.txt").read_text() == "keep me"
