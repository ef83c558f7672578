"""clf-train on the bad-input zoo: unreadable images are skipped with one line each and listed in skipped.csv,
every readable one is trained on, nothing is written outside RUN_DIR, no file name reaches a shell.

Head mode on the tiny random-init resnet10t (a weights file: offline and fast), as the other train tests.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import make_labelled_folder
from train_helpers import TINY
from zoo_files import (ZOO_CLASSES, assert_not_named, assert_one_line_per_bad_file, assert_written_only_under, make_zoo,
                       snapshot)

from clfkit.cli.train import train_cmd
from clfkit.artifacts.checkpoint import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

FAST = ["--backbone", TINY, "--input-size", "32", "--cache-views", "1", "--epochs", "2", "--workers", "0",
        "--device", "cpu", "--precision", "fp32"]


def _train(tmp_path: Path, monkeypatch, data: Path, out: Path, weights: Path, *extra: str):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)
    result = CliRunner().invoke(train_cmd, [str(data), "--out", str(out), "--weights", str(weights), *FAST, *extra])
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "Traceback" not in result.output
    assert_written_only_under(before, snapshot(tmp_path), out)
    return result


def test_unreadable_training_images_are_skipped_and_listed(tmp_path, monkeypatch, tiny_weights, no_shell):
    data = tmp_path / "data"
    zoo = make_zoo(data / "train")
    make_labelled_folder(data / "val", dict.fromkeys(ZOO_CLASSES, 2), seed=1)
    make_labelled_folder(data / "test", dict.fromkeys(ZOO_CLASSES, 2), seed=2)
    out = tmp_path / "run"

    result = _train(tmp_path, monkeypatch, data, out, tiny_weights)

    assert_one_line_per_bad_file(result.stderr, zoo)
    assert_not_named(result.stderr, zoo.good + zoo.ignored)
    with open(out / "skipped.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["path"] for r in rows) == sorted(str(p) for p in zoo.bad)
    assert {r["split"] for r in rows} == {"train"} and all(r["reason"] for r in rows)
    metrics = read_checkpoint(out / "model.pt")["metrics"]
    assert metrics["train_counts"] == {c: len(zoo.good_in(data / "train" / c)) for c in ZOO_CLASSES}
    assert metrics["test"]["num_samples"] == 6


def test_auto_split_quarantines_bad_files_and_trains_on_the_rest(tmp_path, monkeypatch, tiny_weights, no_shell):
    zoo = make_zoo(tmp_path / "images")
    out = tmp_path / "run"

    result = _train(tmp_path, monkeypatch, zoo.root, out, tiny_weights, "--auto-split")

    assert_one_line_per_bad_file(result.stderr, zoo)
    assert_not_named(result.stderr, zoo.good + zoo.ignored)
    with open(out / "data" / "manifest.csv", newline="", encoding="utf-8") as fh:
        manifest = list(csv.DictReader(fh))
    assert sorted(r["source"] for r in manifest) == sorted(p.relative_to(zoo.root).as_posix() for p in zoo.good)
    metrics = read_checkpoint(out / "model.pt")["metrics"]
    assert sum(metrics["train_counts"].values()) == sum(r["split"] == "train" for r in manifest)
    assert metrics["test"]["num_samples"] == sum(r["split"] == "test" for r in manifest)
