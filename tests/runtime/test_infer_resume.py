"""A clf-infer run killed with SIGKILL keeps only whole rows, and --skip-existing finishes the job.

The first run is a real ``clf-infer`` process, killed once its CSV holds some rows (wherever it is at that
moment: decoding, in the model, or writing a row).  The second run continues it through CliRunner.
"""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.cli.infer import infer_cmd
from clfkit.runtime.writers import csv_header
from helpers import make_labelled_folder, sigkill_when

N_PER_CLASS = 500


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def _data_rows(path: Path) -> int:
    try:
        return max(0, len(path.read_bytes().splitlines()) - 1)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_sigkill_leaves_whole_rows_and_skip_existing_finishes_without_redoing(tmp_path: Path, tiny) -> None:
    images = make_labelled_folder(tmp_path / "images", {"cat": N_PER_CLASS, "dog": N_PER_CLASS, "owl": N_PER_CLASS},
                                  size=(40, 36))
    (images / "owl" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    total = 3 * N_PER_CLASS + 1
    out = tmp_path / "preds.csv"
    command = [str(Path(sys.executable).with_name("clf-infer")), str(images), "--model", str(tiny.onnx),
               "--out", str(out), "--batch-size", "4", "--workers", "1", "--threads", "1", "--device", "cpu",
               "--no-progress"]
    sigkill_when(command, lambda: _data_rows(out) >= 40, cwd=tmp_path, what="40 rows in the output", timeout=120,
                 poll_s=0.01)

    header = csv_header(3)
    killed = _rows(out)
    assert killed[0] == header
    assert out.read_bytes().endswith(b"\n")  # no torn last row
    assert all(len(row) == len(header) and row[-1] == "CPUExecutionProvider" for row in killed[1:])
    assert 40 <= len(killed) - 1 < total, "the kill came too late to test anything"
    before = {row[0]: row for row in killed[1:]}

    result = CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--out", str(out),
                                            "--skip-existing", "--device", "cpu", "--no-progress"])
    assert result.exit_code == 3, result.output  # the broken file, as in a run that was never killed
    assert f"{len(before) - ('broken' in ''.join(before))} file(s) already predicted" in result.output
    rows = _rows(out)[1:]
    paths = [row[0] for row in rows]
    assert len(paths) == len(set(paths)) == total  # every file exactly once
    assert {row[0]: row for row in rows if row[0] in before} == before  # finished rows kept, not redone
    assert f"predicted {total - len(before) - 1} of {total - len(before)} files" in result.output

    fresh = tmp_path / "fresh.csv"
    CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--out", str(fresh), "--device", "cpu",
                                   "--no-progress"])
    assert sorted(_rows(fresh)[1:]) == sorted(rows)  # the same rows as one uninterrupted run

    again = CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--out", str(out),
                                           "--skip-existing", "--device", "cpu", "--no-progress"])
    assert again.exit_code == 3  # only the broken file is tried again
    assert "predicted 0 of 1 files" in again.output
    assert len(_rows(out)) == total + 1


def test_skip_existing_refuses_what_it_cannot_continue(tmp_path: Path, tiny) -> None:
    images = make_labelled_folder(tmp_path / "images", {"cat": 2})
    cases = {
        (): "--skip-existing needs --out",
        ("--out", str(tmp_path / "p.json")): "is a .json array",
        ("--out", str(tmp_path / "p.csv"), "--report", str(tmp_path / "r")): "cannot be combined with --report",
    }
    for extra, message in cases.items():
        result = CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--skip-existing", *extra])
        assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
        assert result.output.count("\n") == 1


def test_skip_existing_with_another_topk_names_the_flag(tmp_path: Path, tiny) -> None:
    images = make_labelled_folder(tmp_path / "images", {"cat": 2})
    out = tmp_path / "p.csv"
    CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--out", str(out), "--topk", "2"])
    result = CliRunner().invoke(infer_cmd, [str(images), "--model", str(tiny.onnx), "--out", str(out),
                                            "--skip-existing", "--topk", "3"])
    assert result.exit_code == 1 and "use the same --topk" in result.output
    assert len(_rows(out)) == 3  # untouched
