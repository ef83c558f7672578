"""--resume: a finetune run killed with SIGKILL mid-training continues from its last completed epoch.

The run is a real ``python -m clfkit.train`` process.  The test polls RUN_DIR until last.pt shows that epoch 1
has completed, then sends SIGKILL — wherever the process is at that moment (usually inside epoch 2, sometimes
while writing a file; every write is atomic, so that is part of what is tested).  The resume runs through
CliRunner in this process.
"""
from __future__ import annotations

import csv
import os
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import sigkill_when
from train_helpers import TINY

from clfkit.cli.train import train_cmd
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess
from clfkit.models.classifier import load_checkpoint
from clfkit.data.layout import read_split_folders

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

EPOCHS = 6


def _epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


def _completed_epoch(run_dir: Path) -> int:
    """The epoch last.pt says is complete (0 while it does not exist or is being replaced)."""
    try:
        return int(torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)["epoch"])
    except Exception:  # noqa: BLE001 - not there yet
        return 0


@pytest.mark.slow
def test_resume_after_sigkill_runs_every_epoch_once(tmp_path: Path, tiny_data: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "clfkit.train", str(tiny_data), "--out", str(run_dir), "--mode", "finetune",
               "--backbone", TINY, "--no-pretrained", "--input-size", "32", "--epochs", str(EPOCHS),
               "--batch-size", "8", "--workers", "0", "--patience", "0", "--device", "cpu", "--precision", "fp32"]
    output = sigkill_when(command, lambda: _completed_epoch(run_dir) >= 1, cwd=tmp_path, what="epoch 1",
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = _epochs(run_dir)
    assert 1 <= len(done) < EPOCHS and done == list(range(1, len(done) + 1)), (done, output)
    with open(run_dir / "history.csv", newline="") as fh:
        before = list(csv.DictReader(fh))

    result = CliRunner().invoke(train_cmd, ["--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "next: clf-export" in result.output
    with open(run_dir / "history.csv", newline="") as fh:
        after = list(csv.DictReader(fh))
    assert [int(r["epoch"]) for r in after] == list(range(1, EPOCHS + 1))  # each epoch exactly once
    assert after[:len(before)] == before  # the epochs done before the kill are kept, not redone
    assert int(torch.load(run_dir / "last.pt", weights_only=True)["epoch"]) == EPOCHS

    loaded = load_checkpoint(run_dir / "model.pt")
    assert loaded.config["epochs"] == EPOCHS and loaded.config["mode"] == "finetune"
    sample = read_split_folders(tiny_data).splits["val"][0]
    with torch.no_grad():
        logits = loaded.model(torch.from_numpy(preprocess(load_rgb(sample.path), loaded.spec))[None])
    assert logits.shape == (1, 3) and torch.isfinite(logits).all()


def _fake_run(tmp_path: Path, last: bytes) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"mode": "finetune", "pretrained": false, "epochs": 2}')
    (run_dir / "last.pt").write_bytes(last)
    return run_dir


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x02}q\x00 garbage"])
def test_resume_with_a_corrupt_last_pt_is_one_clear_error(tmp_path: Path, content: bytes) -> None:
    run_dir = _fake_run(tmp_path, content)
    result = CliRunner().invoke(train_cmd, ["--resume", str(run_dir)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert str(run_dir / "last.pt") in lines[0]


def test_resume_with_a_truncated_real_last_pt(tmp_path: Path) -> None:
    real = tmp_path / "real.pt"
    torch.save({"format": "clfkit.resume", "state_dict": {"w": torch.zeros(1000)}}, real)
    run_dir = _fake_run(tmp_path, real.read_bytes()[:-500])
    result = CliRunner().invoke(train_cmd, ["--resume", str(run_dir)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"Error: {run_dir / 'last.pt'}: ")
    assert "checkpoint" in lines[0] and ("corrupt" in lines[0] or "truncated" in lines[0])


def test_resume_without_a_run_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(train_cmd, ["--resume", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"--resume {tmp_path}: no clf-train run there" in result.output
    result = CliRunner().invoke(train_cmd, ["--resume", str(tmp_path / "missing")])
    assert result.exit_code == 1 and "no clf-train run there" in result.output
