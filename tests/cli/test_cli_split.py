"""clf-split from the command line: a summary table on success, one clear line on user errors."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.cli.split import split_cmd
from clfkit.data.split import split_counts

SIZES = {"cat": 10, "dog": 7, "owl": 4}


def invoke(*args: str):
    return CliRunner().invoke(split_cmd, [str(a) for a in args])


def assert_one_line_error(result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    err = result.stderr.strip()
    assert "Traceback" not in result.output
    assert len(err.splitlines()) == 1, err
    assert err.startswith("Error: ")
    for needle in needles:
        assert needle in err
    return err


def test_success_prints_the_summary_table(tiny_folder, tmp_path):
    dst = tmp_path / "data"
    result = invoke(tiny_folder, dst, "--seed", "3", "--mode", "copy")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["class", "train", "val", "test", "total"]
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines if line.split()[:1]
            and line.split()[0] in SIZES}
    for name, n in SIZES.items():
        assert rows[name] == [*split_counts(n, 0.15, 0.15), n]
    total = next(line for line in lines if line.startswith("total"))
    assert [int(v) for v in total.split()[1:]] == [sum(r[k] for r in rows.values()) for k in range(4)]
    assert int(total.split()[-1]) == sum(SIZES.values())
    assert str(dst) in result.stdout and "manifest.csv" in result.stdout
    with open(dst / "manifest.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == sum(SIZES.values())


def test_options_reach_the_split(tiny_folder, tmp_path):
    result = invoke(tiny_folder, tmp_path / "data", "--val", "0", "--test", "0.3", "--min-images", "5")
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in result.stdout.splitlines()
            if line.split()[:1] and line.split()[0] in SIZES}
    assert set(rows) == {"cat", "dog"}
    assert rows["cat"] == [*split_counts(10, 0.0, 0.3), 10]
    assert "owl (4)" in result.stdout


def test_unreadable_files_are_reported_not_fatal(tiny_folder, tmp_path):
    (tiny_folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    result = invoke(tiny_folder, tmp_path / "data")
    assert result.exit_code == 0, result.output
    assert "broken.jpg" in result.stderr  # the skip is logged as it happens
    assert "quarantined 1" in result.stdout


def test_missing_source_is_one_line_error(tmp_path):
    result = invoke(tmp_path / "no_such_folder", tmp_path / "data")
    assert_one_line_error(result, "no_such_folder", "not found")


def test_non_empty_destination_mentions_overwrite(tiny_folder, tmp_path):
    dst = tmp_path / "data"
    assert invoke(tiny_folder, dst).exit_code == 0
    result = invoke(tiny_folder, dst)
    assert_one_line_error(result, "--overwrite", str(dst))
    again = invoke(tiny_folder, dst, "--overwrite", "--seed", "1")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("args, flag", [(["--val", "1.5"], "--val"), (["--test", "-0.1"], "--test"),
                                        (["--val", "0.6", "--test", "0.5"], "--val + --test"),
                                        (["--min-images", "0"], "--min-images")])
def test_bad_values_name_the_flag(tiny_folder, tmp_path, args, flag):
    result = invoke(tiny_folder, tmp_path / "data", *args)
    assert_one_line_error(result, flag)
    assert not (tmp_path / "data").exists()


def test_destination_inside_source(tiny_folder):
    result = invoke(tiny_folder, tiny_folder / "cat" / "out")
    assert_one_line_error(result, "outside SRC")


def test_invalid_mode_is_a_usage_error(tiny_folder, tmp_path):
    result = invoke(tiny_folder, tmp_path / "data", "--mode", "move")
    assert result.exit_code == 2
    assert "--mode" in result.stderr and "hardlink" in result.stderr
    assert not (tmp_path / "data").exists()


def test_non_numeric_value_is_a_usage_error(tiny_folder, tmp_path):
    result = invoke(tiny_folder, tmp_path / "data", "--val", "ten")
    assert result.exit_code == 2
    assert "--val" in result.stderr


def test_help_lists_the_options():
    result = invoke("--help")
    assert result.exit_code == 0
    for option in ("--val", "--test", "--seed", "--min-images", "--mode", "--overwrite"):
        assert option in result.stdout


def test_console_script(tiny_folder, tmp_path):
    script = Path(sys.executable).parent / "clf-split"
    assert script.exists(), "clf-split is not installed next to the interpreter"
    dst = tmp_path / "out"
    done = subprocess.run([str(script), str(tiny_folder), str(dst), "--mode", "copy"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "total" in done.stdout and "cat" in done.stdout
    assert (dst / "manifest.csv").is_file()
    failed = subprocess.run([str(script), str(tmp_path / "missing"), str(tmp_path / "x")], capture_output=True,
                            text=True, timeout=120, cwd=tmp_path)
    assert failed.returncode == 1
    assert failed.stderr.strip().startswith("Error: ") and "Traceback" not in failed.stderr
