"""``clf-infer --ray --out DIR/``: which outputs mean Parquet shards, and ``--skip-existing`` on a folder of
shards (finished files, error rows dropped, torn shards removed, a --topk mismatch refused), without a cluster.

The shards here are real Parquet files written with pyarrow, with the columns and types the workers write
(clfkit.cluster.stages.row_schema without ``order``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clfkit.cluster.parquet import count_rows, finished_in_dir, is_dir_output, shard_files
from clfkit.cluster.stages import row_schema
from clfkit.errors import ConfigError
from clfkit.runtime.writers import csv_header, path_key

CLASSES = ("cat", "dog", "owl")


def shard_schema(topk: int) -> pa.Schema:
    schema = row_schema(topk, len(CLASSES))
    return schema.remove(schema.get_field_index("order"))  # the job drops `order` before writing


def row(path: str, topk: int, error: str | None = None) -> dict:
    cells: dict = {name: None for name in csv_header(topk)}
    cells.update(path=path, provider="CPUExecutionProvider", error=error)
    if error is None:
        cells.update(pred="cat", prob=0.5, index=0)
        for n in range(1, topk + 1):
            cells[f"top{n}"], cells[f"top{n}_prob"] = CLASSES[n - 1], 0.5 / n
    return cells


def write_shard(path: Path, rows: list[dict], topk: int = 2) -> Path:
    pq.write_table(pa.Table.from_pylist(rows, schema=shard_schema(topk)), path)
    return path


def test_dir_output_is_a_trailing_slash_or_an_existing_folder(tmp_path):
    (tmp_path / "preds.csv").write_text("path\n")
    assert is_dir_output(f"{tmp_path}/new/")
    assert is_dir_output(tmp_path) and is_dir_output(str(tmp_path))
    assert not is_dir_output(tmp_path / "preds.csv")  # an existing file
    assert not is_dir_output(tmp_path / "new.csv")  # a file still to be written
    assert not is_dir_output(None)


def test_shards_are_the_visible_parquet_files(tmp_path):
    for name in ("b.parquet", "a.parquet", ".a.parquet.123.tmp", ".hidden.parquet", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert shard_files(tmp_path) == [str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")]
    assert shard_files(tmp_path / "missing") == []


def test_finished_files_are_the_rows_with_a_prediction(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths are matched as absolute ones, from where the run starts
    out = tmp_path / "out"
    out.mkdir()
    a = write_shard(out / "run1_0.parquet", [row("photos/a.jpg", 2), row("s3://bucket/b.jpg", 2)])
    b = write_shard(out / "run1_1.parquet", [row(str(tmp_path / "c.jpg"), 2)])
    before = a.read_bytes(), b.read_bytes()
    done = finished_in_dir(out, 2)
    assert done == {path_key("photos/a.jpg"), "s3://bucket/b.jpg", str(tmp_path / "c.jpg")}
    assert path_key("photos/a.jpg") == str(tmp_path / "photos" / "a.jpg")
    assert (a.read_bytes(), b.read_bytes()) == before  # shards without error rows are left as they are


def test_error_rows_are_removed_from_their_shard(tmp_path):
    shard = write_shard(tmp_path / "run1_0.parquet", [row("/p/a.jpg", 2), row("/p/bad.jpg", 2, "empty file (0 bytes)"),
                                                      row("/p/c.jpg", 2)])
    only_errors = write_shard(tmp_path / "run1_1.parquet", [row("/p/x.jpg", 2, "file not found (moved or deleted?)")])
    assert finished_in_dir(tmp_path, 2) == {"/p/a.jpg", "/p/c.jpg"}
    kept = pq.read_table(shard)
    assert kept["path"].to_pylist() == ["/p/a.jpg", "/p/c.jpg"] and kept["error"].null_count == 2
    assert kept.schema == shard_schema(2)  # still one dataset with the other shards
    assert pq.read_table(only_errors).num_rows == 0
    assert shard_files(tmp_path) == [str(shard), str(only_errors)]  # no temporary file left beside them
    # Those files run again and get one row each: a second look finds nothing more to drop.
    assert finished_in_dir(tmp_path, 2) == {"/p/a.jpg", "/p/c.jpg"}


def test_a_torn_shard_is_removed_and_logged(tmp_path):
    good = write_shard(tmp_path / "run1_0.parquet", [row("/p/a.jpg", 2)])
    torn = write_shard(tmp_path / "run1_1.parquet", [row(f"/p/{i}.jpg", 2) for i in range(50)])
    torn.write_bytes(torn.read_bytes()[: os.path.getsize(torn) // 2])  # a job killed while writing it
    said: list[str] = []
    assert finished_in_dir(tmp_path, 2, log=said.append) == {"/p/a.jpg"}
    assert not torn.exists() and good.exists()
    assert len(said) == 1 and str(torn) in said[0] and "cannot be read" in said[0], said


def test_a_shard_of_another_topk_is_refused_naming_topk(tmp_path):
    write_shard(tmp_path / "run1_0.parquet", [row("/p/a.jpg", 3)], topk=3)
    with pytest.raises(ConfigError, match="--topk") as info:
        finished_in_dir(tmp_path, 2)
    assert "run1_0.parquet" in str(info.value)
    assert pq.read_table(tmp_path / "run1_0.parquet").num_rows == 1  # refused, not rewritten


def test_no_folder_means_nothing_finished(tmp_path):
    assert finished_in_dir(tmp_path / "missing", 2) == set()


def test_count_rows_counts_rows_and_error_rows(tmp_path):
    a = write_shard(tmp_path / "a.parquet", [row("/p/a.jpg", 2), row("/p/b.jpg", 2, "empty file (0 bytes)")])
    b = write_shard(tmp_path / "b.parquet", [row("/p/c.jpg", 2, "broken symbolic link"), row("/p/d.jpg", 2),
                                            row("/p/e.jpg", 2)])
    empty = write_shard(tmp_path / "c.parquet", [])
    assert count_rows([str(a), str(b), str(empty)]) == (5, 2)
    assert count_rows([]) == (0, 0)
