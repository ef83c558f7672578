"""clf-export verifying and calibrating on the bad-input zoo: one line per unreadable file, every readable one
used, nothing written outside OUT's folder, no file name handed to a shell."""
from __future__ import annotations

import json

from click.testing import CliRunner
from zoo_files import assert_not_named, assert_one_line_per_bad_file, assert_written_only_under, make_zoo, snapshot

from clfkit.cli.export import export_cmd


def test_verify_and_calibration_folders_with_bad_files(tmp_path, monkeypatch, tiny_run, one_thread, no_shell):
    zoo = make_zoo(tmp_path / "images")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path, tiny_run.root)

    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(out / "model.onnx"),
                                             "--verify", str(zoo.root), "--int8", "--calibration", str(zoo.root)])

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "Traceback" not in result.output
    verify_lines = [line for line in result.stderr.splitlines() if "verify image" in line]
    calibration_lines = [line for line in result.stderr.splitlines() if "calibration image" in line]
    assert_one_line_per_bad_file("\n".join(verify_lines), zoo)
    assert_one_line_per_bad_file("\n".join(calibration_lines), zoo)
    assert_not_named(result.stderr, zoo.good + zoo.ignored)

    report = json.loads((out / "model.verify.json").read_text(encoding="utf-8"))
    assert sorted(report["images"]["files"]) == sorted(str(p) for p in zoo.good)
    assert report["images"]["count"] == len(zoo.good)
    assert len(report["images"]["skipped"]) == len(zoo.bad)
    assert report["passed"] is True
    assert sorted(p.name for p in out.iterdir()) == ["model.int8.onnx", "model.onnx", "model.verify.json"]
    assert_written_only_under(before, snapshot(tmp_path, tiny_run.root), out)
