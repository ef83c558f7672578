"""clf-train reads two kinds of user .pt files, --weights FILE and RUN_DIR/{last,model}.pt on --resume: a file
that would run code when unpickled is refused in one line and its code never runs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hostile_files import payload_really_runs, save_code_pickle
from train_helpers import TINY
from helpers import one_error_line

from clfkit.artifacts.checkpoint import RESUME_FORMAT
from clfkit.cli.train import train_cmd

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

FAST = ["--input-size", "32", "--cache-views", "1", "--workers", "0", "--device", "cpu", "--precision", "fp32"]


def _train(*args: object):
    return CliRunner().invoke(train_cmd, [str(a) for a in args])


@pytest.fixture(scope="module")
def finished_run(tiny_data: Path, tiny_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-epoch head run (model.pt, last.pt, config.json) for --resume to read."""
    run_dir = tmp_path_factory.mktemp("hostile-run") / "run"
    result = _train(tiny_data, "--out", run_dir, "--backbone", TINY, "--weights", tiny_weights, "--epochs", "1",
                    *FAST)
    assert result.exit_code == 0, result.output
    return run_dir


def _copy_run(run_dir: Path, to: Path) -> Path:
    to.mkdir()
    for name in ("config.json", "model.pt", "last.pt", "spec.json"):
        (to / name).write_bytes((run_dir / name).read_bytes())
    return to


def test_the_payload_would_run_code(tmp_path: Path) -> None:
    assert payload_really_runs(tmp_path / "pwned")


def test_weights_file_that_runs_code_is_refused(tmp_path: Path, tiny_data: Path, tiny_weights: Path) -> None:
    marker = tmp_path / "pwned"
    state = torch.load(tiny_weights, weights_only=True)
    evil = save_code_pickle(tmp_path / "evil.pth", marker, **state)
    line = one_error_line(_train(tiny_data, "--out", tmp_path / "run", "--backbone", TINY, "--weights", evil,
                                 *FAST))
    assert f"--weights {evil}: refused to load" in line and "weights_only=True" in line
    assert "Unsupported global" in line and "\x1b" not in line  # names the object, without terminal escapes
    assert not marker.exists()
    assert not (tmp_path / "run" / "model.pt").exists()


@pytest.mark.parametrize("name", ["last.pt", "model.pt"])
def test_resume_refuses_a_run_file_that_runs_code(finished_run: Path, tmp_path: Path, name: str) -> None:
    run_dir = _copy_run(finished_run, tmp_path / "run")
    marker = tmp_path / "pwned"
    real = torch.load(run_dir / name, weights_only=True)
    save_code_pickle(run_dir / name, marker, **real)
    if name == "last.pt":
        assert real["format"] == RESUME_FORMAT
    line = one_error_line(_train("--resume", run_dir))
    assert f"{run_dir / name}: refused to load" in line and "Unsupported global" in line
    assert not marker.exists()
    assert json.loads((run_dir / "config.json").read_text()) == json.loads((finished_run / "config.json").read_text())
