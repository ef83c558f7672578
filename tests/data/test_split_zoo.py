"""clf-split on the bad-input zoo: one line per unreadable file, every good file split, nothing written outside
DST, no file name handed to a shell."""
from __future__ import annotations

import csv
from pathlib import Path

from click.testing import CliRunner

from clfkit.cli.split import split_cmd

from zoo_files import (assert_not_named, assert_one_line_per_bad_file, assert_written_only_under, make_zoo, shown,
                       snapshot)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_split_quarantines_each_bad_file_and_splits_every_good_one(tmp_path, monkeypatch, no_shell):
    zoo = make_zoo(tmp_path / "images")
    work, dst = tmp_path / "work", tmp_path / "data"
    work.mkdir()
    monkeypatch.chdir(work)
    before = snapshot(tmp_path)

    result = CliRunner().invoke(split_cmd, [str(zoo.root), str(dst), "--mode", "copy"])

    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert_one_line_per_bad_file(result.stderr, zoo)
    assert_not_named(result.stderr, zoo.good + zoo.ignored)
    skipped = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(skipped) == len(zoo.bad)  # and nothing else (hidden files, x.jpg/, notes.txt) is reported

    sources = {row["source"] for row in read_csv(dst / "manifest.csv")}
    assert sources == {p.relative_to(zoo.root).as_posix() for p in zoo.good}
    for path in zoo.good:  # copied byte for byte, awkward names included
        row = next(r for r in read_csv(dst / "manifest.csv") if r["source"] == path.relative_to(zoo.root).as_posix())
        assert (dst / row["path"]).read_bytes() == path.read_bytes(), shown(path)
    quarantined = {row["source"]: row["reason"] for row in read_csv(dst / "quarantine.csv")}
    assert set(quarantined) == {p.relative_to(zoo.root).as_posix() for p in zoo.bad}
    assert "decompression bomb" in quarantined["owl/bomb_60000x60000.png"]
    assert "empty" in quarantined["cat/zero_bytes.jpg"]
    assert "broken symbolic link" in quarantined["dog/dangling.jpg"]
    assert "loop" in quarantined["owl/loop_a.jpg"] and "broken" not in quarantined["owl/loop_a.jpg"]
    assert f"quarantined {len(zoo.bad)} unreadable file(s)" in result.stdout

    assert_written_only_under(before, snapshot(tmp_path), dst)

