"""Writers: every format's columns, streaming (rows on disk before the run ends), atomic .json."""
from __future__ import annotations

import csv
import json
import os

import pytest

from clfkit.errors import ConfigError, OutputError
from clfkit.runtime import Prediction
from clfkit.runtime.writers import csv_header, finished_paths, open_writer, path_key
from fs_helpers import leftovers

GOOD = Prediction(path="a/cat 1.jpg", label="cat", index=0, prob=0.8123456789,
                  topk=(("cat", 0.8123456789), ("dog, big", 0.15), ("owl", 0.0376543211)))
BAD = Prediction(path="a/broken.jpg", error="truncated or damaged image data")


def test_csv_columns_and_values(tmp_path):
    out = tmp_path / "preds.csv"
    with open_writer(out, 3, "CPUExecutionProvider") as writer:
        writer.write(GOOD)
        writer.write(BAD)
    rows = list(csv.DictReader(out.open(newline="", encoding="utf-8")))
    assert list(rows[0]) == ["path", "pred", "prob", "index", "top1", "top1_prob", "top2", "top2_prob", "top3",
                             "top3_prob", "error", "provider"]
    assert rows[0]["path"] == "a/cat 1.jpg" and rows[0]["pred"] == "cat" and rows[0]["prob"] == "0.812346"
    assert rows[0]["top2"] == "dog, big" and rows[0]["top3_prob"] == "0.037654" and rows[0]["error"] == ""
    assert rows[1]["error"] == "truncated or damaged image data"
    assert rows[1]["pred"] == rows[1]["prob"] == rows[1]["index"] == rows[1]["top1"] == ""
    assert {r["provider"] for r in rows} == {"CPUExecutionProvider"}


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_json_formats_carry_the_same_fields(tmp_path, suffix):
    out = tmp_path / f"preds{suffix}"
    with open_writer(out, 3, "CUDAExecutionProvider") as writer:
        writer.write(GOOD)
        writer.write(BAD)
    text = out.read_text(encoding="utf-8")
    rows = json.loads(text) if suffix == ".json" else [json.loads(line) for line in text.splitlines()]
    assert rows[0] == {"path": "a/cat 1.jpg", "pred": "cat", "prob": 0.812346, "index": 0,
                       "topk": [{"label": "cat", "prob": 0.812346}, {"label": "dog, big", "prob": 0.15},
                                {"label": "owl", "prob": 0.037654}],
                       "error": None, "provider": "CUDAExecutionProvider"}
    assert rows[1]["error"] and rows[1]["pred"] is None and rows[1]["topk"] == []


def test_empty_json_is_an_empty_array(tmp_path):
    with open_writer(tmp_path / "p.json", 5, "CPUExecutionProvider"):
        pass
    assert json.loads((tmp_path / "p.json").read_text()) == []


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_streaming_formats_have_every_row_on_disk_as_soon_as_it_is_written(tmp_path, suffix):
    out = tmp_path / f"preds{suffix}"
    with pytest.raises(KeyboardInterrupt):
        with open_writer(out, 3, "CPUExecutionProvider") as writer:
            for _ in range(3):
                writer.write(GOOD)
                lines = out.read_text(encoding="utf-8").splitlines()  # read by another process mid-run
                assert len(lines) == writer.rows + (suffix == ".csv")
            raise KeyboardInterrupt  # the run is interrupted: the rows stay, none is torn
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 3 + (suffix == ".csv")
    if suffix == ".jsonl":
        assert all(json.loads(line)["pred"] == "cat" for line in lines)


def test_interrupted_json_leaves_no_half_file_and_keeps_an_old_one(tmp_path):
    out = tmp_path / "preds.json"
    out.write_text("[]\n")
    with pytest.raises(RuntimeError):
        with open_writer(out, 3, "CPUExecutionProvider") as writer:
            writer.write(GOOD)
            raise RuntimeError("crash")
    assert out.read_text() == "[]\n"
    assert [p.name for p in tmp_path.iterdir()] == ["preds.json"]  # no temporary file left behind


def test_unknown_extension_names_the_flag(tmp_path):
    with pytest.raises(ConfigError, match=r"--out .*\.xlsx.*\.csv, \.jsonl or \.json"):
        open_writer(tmp_path / "preds.xlsx", 3, "CPUExecutionProvider")


def test_stdout_gets_csv(capsys):
    with open_writer(None, 2, "CPUExecutionProvider") as writer:
        writer.write(GOOD)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(csv_header(2))
    assert lines[1].startswith("a/cat 1.jpg,cat,0.812346,0,cat,0.812346,")


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_finished_paths_drops_error_rows_and_a_torn_last_row(tmp_path, suffix, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / f"preds{suffix}"
    with open_writer(out, 3, "CPUExecutionProvider") as writer:
        writer.write(GOOD)
        writer.write(BAD)
        writer.write(Prediction(path="a/dog.jpg", label="dog", index=1, prob=0.9, topk=GOOD.topk))
    whole = out.read_bytes()
    with open(out, "ab") as fh:  # a row cut short (e.g. by a full disk in an older writer)
        fh.write(b"a/owl.jpg,owl,0.7" if suffix == ".csv" else b'{"path": "a/owl.jpg", "pred": "o')
    done = finished_paths(out, 3)
    assert done == {path_key("a/cat 1.jpg"), path_key(tmp_path / "a" / "dog.jpg")}
    lines = out.read_bytes().splitlines(keepends=True)
    assert b"".join(lines) == b"".join(line for line in whole.splitlines(keepends=True) if b"broken" not in line)
    with open_writer(out, 3, "CPUExecutionProvider", append=True) as writer:  # continues: no second header
        writer.write(BAD)
    assert out.read_bytes().count(b"path,pred") == (suffix == ".csv")
    assert len(out.read_bytes().splitlines()) == len(lines) + 1


def test_finished_paths_of_a_missing_or_empty_file(tmp_path):
    assert finished_paths(tmp_path / "none.csv", 3) == set()
    (tmp_path / "empty.csv").write_bytes(b"")
    assert finished_paths(tmp_path / "empty.csv", 3) == set()
    assert (tmp_path / "empty.csv").read_text().startswith("path,pred,prob")


def test_file_names_that_are_not_utf8_are_escaped_not_fatal(tmp_path):
    name = os.fsdecode(b"a/caf\xe9.jpg")  # Latin-1 bytes from an old zip: a surrogate escape in Python
    out = tmp_path / "preds.csv"
    with open_writer(out, 3, "CPUExecutionProvider") as writer:
        writer.write(Prediction(path=name, label="cat", index=0, prob=0.8, topk=GOOD.topk))
    assert "a/caf\\xe9.jpg" in out.read_text(encoding="utf-8")
    assert finished_paths(out, 3) == {path_key(name)}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".json"])
def test_a_full_disk_is_one_clear_error_and_leaves_only_whole_rows(full_disk, suffix):
    out = full_disk / f"preds{suffix}"
    big = Prediction(path="x" * 2000 + ".jpg", label="cat", index=0, prob=0.5, topk=GOOD.topk)
    with pytest.raises(OutputError, match="No space left on device") as caught:
        with open_writer(out, 3, "CPUExecutionProvider") as writer:
            for _ in range(100):  # 200 KB of rows on a 64 KiB filesystem
                writer.write(big)
    assert str(caught.value).startswith(f"--out {out}: cannot write")
    if suffix == ".json":
        assert leftovers(full_disk) == []  # the unfinished array never appears, nor its temporary file
        return
    assert leftovers(full_disk) == [out.name]
    text = out.read_text(encoding="utf-8")
    assert text.endswith("\n")
    rows = text.splitlines()[suffix == ".csv":]
    assert 0 < len(rows) < 100 and all(row.startswith(("x", '{"path": "x')) for row in rows)
    assert f"keeps the {len(rows)} whole rows" in str(caught.value)


def test_a_read_only_folder_is_one_clear_error(readonly_dir):
    with pytest.raises(OutputError, match=r"cannot write it \(Read-only file system\)"):
        open_writer(readonly_dir / "preds.csv", 3, "CPUExecutionProvider")
