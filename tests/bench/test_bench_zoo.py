"""clf-bench on the bad-input zoo: one line per unreadable file, every readable one benchmarked, nothing written
outside --out, no file name handed to a shell.  The quickest settings: the harness is checked, not a timing."""
from __future__ import annotations

import json

from zoo_files import assert_not_named, assert_one_line_per_bad_file, assert_written_only_under, make_zoo, snapshot
from click.testing import CliRunner

from clfkit.cli.bench import bench_cmd


QUICK = ["--batch-sizes", "4", "--tta", "0", "--threads", "1", "--loader-workers", "0", "--min-runs", "1",
         "--min-seconds", "0", "--repeats", "1", "--no-memory", "--no-peers"]


def test_bench_skips_each_bad_file_with_one_line(tmp_path, monkeypatch, bench_run, no_shell):
    zoo = make_zoo(tmp_path / "images")
    out = tmp_path / "out"
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path, bench_run.data)

    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(bench_run.onnx), str(zoo.root),
                                            "--out", str(out), *QUICK])

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert_one_line_per_bad_file(result.stderr, zoo)
    assert_not_named(result.stderr, zoo.good + zoo.ignored)
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["data"]["images"] == len(zoo.good)
    assert sorted(s["path"] for s in results["data"]["skipped"]) == sorted(str(p) for p in zoo.bad)
    assert all(row["images"] == len(zoo.good) for row in results["e2e"])  # every backend ran every good file
    assert (out / "report.md").is_file()
    assert_written_only_under(before, snapshot(tmp_path, bench_run.data), out)
