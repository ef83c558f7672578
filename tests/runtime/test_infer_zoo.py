"""clf-infer on the bad-input zoo: exit code 3, one error row per unreadable file, a prediction for every good
one, nothing written outside the output paths, no file name handed to a shell."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from zoo_files import assert_not_named, assert_written_only_under, make_zoo, shown, snapshot

from clfkit.runtime.infer import EXIT_SOME_FAILED
from clfkit.cli.infer import infer_cmd


def _rows(path: Path) -> list[dict]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_every_file_gets_one_row_and_bad_ones_an_error(tmp_path, monkeypatch, tiny, no_shell, fmt):
    zoo = make_zoo(tmp_path / "images")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)

    preds = out / f"preds.{fmt}"
    result = CliRunner().invoke(infer_cmd, ["--model", str(tiny.onnx), str(zoo.root), "--out", str(preds),
                                            "--report", str(out / "report"), "--visualize", "2", "--tta", "2",
                                            "--device", "cpu", "--threads", "1", "--no-progress"])

    assert result.exit_code == EXIT_SOME_FAILED, result.output
    assert "Traceback" not in result.output
    assert_not_named(result.stderr, zoo.good + zoo.ignored)  # problems are in the rows, not on stderr
    rows = _rows(preds)  # JSON Lines: a name with a newline is escaped, so one file is still one line
    by_path = {}
    for row in rows:
        assert row["path"] not in by_path, f"two rows for {shown(row['path'])}"
        by_path[row["path"]] = row
    assert set(by_path) == {str(p) for p in zoo.good + zoo.bad}  # hidden files, x.jpg/, notes.txt: no row
    for path in zoo.good:
        row = by_path[str(path)]
        assert not row["error"] and row["pred"] in tiny.spec.class_names, shown(path)
    for path in zoo.bad:
        row = by_path[str(path)]
        assert row["error"] and not row["pred"], shown(path)
        assert "\n" not in row["error"]
    assert f"predicted {len(zoo.good)} of {len(zoo.good) + len(zoo.bad)} files" in result.stderr
    assert f"{len(zoo.bad)} file(s) could not be read" in result.stderr

    metrics = json.loads((out / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["num_samples"] == len(zoo.good)
    assert_written_only_under(before, snapshot(tmp_path), out)
