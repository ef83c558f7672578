"""clf-infer writing to a full disk or a read-only folder: one clear line; rows are whole, reports atomic."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fs_helpers import FULL, REASONS, fill, no_temporaries
from helpers import make_labelled_folder, one_error_line

from clfkit.cli.infer import infer_cmd


@pytest.mark.parametrize("where", REASONS)
def test_report_to_a_full_or_read_only_disk(tmp_path: Path, tiny, where: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(where)
    if where == "full_disk":
        fill(folder)
    labelled = make_labelled_folder(tmp_path / "test", {"cat": 3, "dog": 3, "owl": 3})
    result = CliRunner().invoke(infer_cmd, [str(labelled), "--model", str(tiny.onnx), "--out",
                                            str(tmp_path / "preds.csv"), "--report", str(folder / "report"),
                                            "--no-progress"])
    line = one_error_line(result, REASONS[where])
    assert set(no_temporaries(folder)) <= {"filler.bin", "report"}
    if where == "readonly_dir":  # found before predicting, not after
        assert line.startswith(f"Error: --report {folder / 'report'}: cannot write there")
        assert not (tmp_path / "preds.csv").exists()
    else:  # the disk fills up while the report is written: the predictions are all there
        assert len((tmp_path / "preds.csv").read_text().splitlines()) == 10


def test_rows_on_a_disk_that_fills_up_stay_whole(tmp_path: Path, tiny, full_disk: Path) -> None:
    labelled = make_labelled_folder(tmp_path / "test", {"cat": 20, "dog": 20, "owl": 20})
    fill(full_disk, leave=4096)
    out = full_disk / "preds.csv"
    result = CliRunner().invoke(infer_cmd, [str(labelled), "--model", str(tiny.onnx), "--out", str(out),
                                            "--no-progress"])
    line = one_error_line(result, FULL)
    assert line.startswith(f"Error: --out {out}: cannot write")
    assert no_temporaries(full_disk) == ["filler.bin", "preds.csv"]
    text = out.read_text()
    assert text.endswith("\n") and 1 < len(text.splitlines()) < 61
    assert all(row.endswith(",CPUExecutionProvider") for row in text.splitlines()[1:])
