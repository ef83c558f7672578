"""clf-train through click's CliRunner: the summary a user reads, and user errors as one line, exit code 1."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from train_helpers import TINY

from clfkit.cli.train import train_cmd
from clfkit.report.intervals import format_interval

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

FAST = ["--input-size", "32", "--cache-views", "1", "--workers", "0", "--device", "cpu", "--precision", "fp32"]


def _invoke(args: list) -> Result:
    return CliRunner().invoke(train_cmd, [str(a) for a in args])


def _assert_user_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception  # a ClickException, not a crash
    assert "Traceback" not in result.output
    assert "Error: " in result.output
    for part in parts:
        assert part in result.output


def test_head_run_prints_the_summary(tmp_path: Path, tiny_data: Path, tiny_weights: Path) -> None:
    out = tmp_path / "run"
    result = _invoke([tiny_data, "--out", out, "--backbone", TINY, "--weights", tiny_weights, "--epochs", "3",
                      "--mode", "head", *FAST])
    assert result.exit_code == 0, result.output
    stdout = result.stdout
    assert "done in" in stdout and "3 epochs" in stdout
    assert "validation accuracy" in stdout
    assert "test accuracy" in stdout and "(6 images)" in stdout
    # each test number with its 95 % interval, the same ones metrics.json keeps
    test = json.loads((out / "metrics.json").read_text())["test"]
    for key in ("accuracy", "macro_f1"):
        assert f"{100 * test[key]:.2f} % {format_interval(test[f'{key}_ci95'], percent=True)}" in stdout
        assert test[f"{key}_ci95"][0] <= test[key] <= test[f"{key}_ci95"][1]
    assert f"model:   {out / 'model.pt'}" in stdout
    assert f"report:  {out / 'report'}" in stdout
    assert f"next: clf-export {out / 'model.pt'} model.onnx" in stdout
    assert "on cached features" in stdout  # head mode reports the backbone-vs-cached epoch time
    assert f"→ {out}" in result.stderr  # progress and log lines go to stderr, the summary to stdout
    assert (out / "model.pt").is_file() and (out / "history.csv").is_file()


def test_missing_data_is_one_error_line(tmp_path: Path, tiny_weights: Path) -> None:
    result = _invoke([tmp_path / "nowhere", "--out", tmp_path / "run", "--backbone", TINY,
                      "--weights", tiny_weights, *FAST])
    _assert_user_error(result, f"{tmp_path / 'nowhere'}: data folder not found")
    assert len([line for line in result.output.splitlines() if line.startswith("Error:")]) == 1


def test_bad_epochs_names_the_flag(tmp_path: Path, tiny_data: Path) -> None:
    _assert_user_error(_invoke([tiny_data, "--out", tmp_path / "run", "--epochs", "0"]),
                       "--epochs must be at least 1, got 0")
    assert not (tmp_path / "run").exists()  # refused before anything was created


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "-1"], "--lr"),
    (["--label-smoothing", "1"], "--label-smoothing"),
    (["--mode", "head", "--no-pretrained"], "--no-pretrained"),
    (["--weights", "missing.pth"], "--weights missing.pth: file not found"),
])
def test_bad_options_name_their_flag(tmp_path: Path, tiny_data: Path, args: list[str], message: str) -> None:
    _assert_user_error(_invoke([tiny_data, "--out", tmp_path / "run", *args]), message)


def test_unknown_backbone_suggests_close_names(tmp_path: Path, tiny_data: Path) -> None:
    result = _invoke([tiny_data, "--out", tmp_path / "run", "--backbone", "efficientnet_lite", *FAST])
    _assert_user_error(result, "unknown --backbone 'efficientnet_lite'", "Did you mean", "'efficientnet_lite0'")
    result = _invoke([tiny_data, "--out", tmp_path / "run2", "--backbone", "timm:resnet10", *FAST])
    _assert_user_error(result, "Did you mean", "'timm:resnet10t'")


def test_bad_choice_is_a_usage_error(tmp_path: Path, tiny_data: Path) -> None:
    result = _invoke([tiny_data, "--mode", "fintune"])
    assert result.exit_code == 2 and "'fintune' is not one of 'auto', 'head', 'partial', 'finetune'" in result.output


def test_help_lists_the_run_dir_contract() -> None:
    result = _invoke(["--help"])
    assert result.exit_code == 0
    for word in ("model.pt", "history.csv", "--resume", "--auto-split", "--patience"):
        assert word in result.output


def test_cli_defaults_are_the_library_defaults() -> None:
    """clf-train and fit(TrainConfig()) must train the same way when no option is given."""
    import dataclasses

    from clfkit.train.config import TrainConfig

    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    params = train_cmd.make_context("clf-train", []).params  # what train_cmd hands to TrainConfig
    assert set(params) <= set(fields), set(params) - set(fields)
    for name, default in params.items():
        assert default == fields[name], f"--{name.replace('_', '-')}: CLI {default!r}, TrainConfig {fields[name]!r}"
