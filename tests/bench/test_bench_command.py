"""``clf-bench`` through click: the files a user gets, and one-line errors for bad input."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from clfkit.cli.bench import bench_cmd

QUICK = ["--batch-sizes", "2", "--tta", "0", "--threads", "1", "--loader-workers", "0", "--min-runs", "2",
         "--min-seconds", "0", "--repeats", "1", "--no-memory", "--max-images", "6", "--no-peers"]


def test_writes_the_report_files_and_prints_the_targets(bench_run, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(bench_run.onnx), str(bench_run.data),
                                            "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    for name in ("report.md", "results.json", "results.csv", "latency.png", "throughput.png"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "results.json").read_text())
    assert saved["config"]["batch_sizes"] == [2] and saved["config"]["tta"] == [0]
    assert saved["environment"]["command"].startswith("clf-bench ")
    assert saved["int8"] is None  # no --int8 given: no verdict
    assert "report:" in result.output and "end-to-end images/s" in result.output


def test_bad_batch_sizes_is_a_usage_error(bench_run, tmp_path: Path) -> None:
    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(bench_run.onnx), str(bench_run.data),
                                            "--out", str(tmp_path), "--batch-sizes", "1,x"])
    assert result.exit_code == 2
    assert "--batch-sizes" in result.output


def test_missing_model_is_one_line_and_exit_1(bench_run, tmp_path: Path) -> None:
    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(tmp_path / "nope.onnx"),
                                            str(bench_run.data), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "MODEL" in result.output and "file not found" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
