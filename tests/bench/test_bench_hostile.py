"""clf-bench opens a user's model.pt (the PyTorch baseline) and ONNX files: a checkpoint that runs code and an
ONNX file whose external data lies outside its folder are each refused in one line, before anything is timed."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import one_error_line
from click.testing import CliRunner
from hostile_files import HOSTILE_EXTERNAL_DATA, hostile_external_data, save_code_pickle

from clfkit.cli.bench import bench_cmd
from clfkit.artifacts.checkpoint import read_checkpoint

QUICK = ["--batch-sizes", "2", "--tta", "0", "--threads", "1", "--loader-workers", "0", "--min-runs", "2",
         "--min-seconds", "0", "--repeats", "1", "--no-memory", "--max-images", "6", "--no-peers"]


def _bench(*args: object):
    return CliRunner().invoke(bench_cmd, [str(a) for a in args])


def test_a_baseline_checkpoint_that_runs_code_is_refused(bench_run, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = save_code_pickle(tmp_path / "model.pt", marker, **read_checkpoint(bench_run.checkpoint))
    line = one_error_line(_bench(evil, bench_run.onnx, bench_run.data, "--out", tmp_path / "out", *QUICK))
    assert f"{evil}: refused to load" in line and "Unsupported global" in line
    assert not marker.exists()
    assert not (tmp_path / "out" / "results.json").exists()


@pytest.mark.parametrize("kind", ["dotdot", "symlink"])
@pytest.mark.parametrize("flag", ["MODEL", "--int8"])
def test_onnx_with_external_data_outside_its_folder_is_refused(bench_run, tmp_path: Path, kind: str,
                                                               flag: str) -> None:
    assert kind in HOSTILE_EXTERNAL_DATA
    hostile, reason = hostile_external_data(bench_run.onnx, tmp_path, kind)
    model, extra = (hostile, []) if flag == "MODEL" else (bench_run.onnx, ["--int8", hostile])
    line = one_error_line(_bench(bench_run.checkpoint, model, bench_run.data, "--out", tmp_path / "out",
                                 *extra, *QUICK))
    assert str(hostile) in line and reason in line
    assert not (tmp_path / "out" / "results.json").exists()
