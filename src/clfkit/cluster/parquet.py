"""``clf-infer --ray --out DIR/``: Parquet shards written by the workers, and continuing into them.  No torch.

The shards hold the columns of the CSV output (:func:`clfkit.runtime.writers.csv_header`), typed (``prob`` and
``topN_prob`` float64, ``index`` int64, the rest strings, null where a CSV cell is empty).  Every run adds its
own files (``<run id>_<block>.parquet``), so a folder read as one dataset (``pyarrow.dataset``, pandas,
Spark, DuckDB, ``ray.data.read_parquet``) holds every run's rows.

``--skip-existing`` reads the ``path`` and ``error`` columns of the shards already there: files with a
prediction are not run again; shards with error rows are rewritten without them, and a shard that cannot be
read (cut short when a job was killed while writing it) is removed, so those files are tried again and every
file ends with exactly one row.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from clfkit.errors import ConfigError, OutputError
from clfkit.io import atomic_path
from clfkit.runtime.writers import csv_header, path_key

__all__ = ["is_dir_output", "shard_files", "write_shards", "finished_in_dir", "count_rows"]

SUFFIX = ".parquet"


def is_dir_output(out: str | os.PathLike | None) -> bool:
    """``--out DIR/`` (a trailing slash, or an existing folder) asks for Parquet shards."""
    if out is None:
        return False
    text = os.fspath(out)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def shard_files(out_dir: str | os.PathLike) -> list[str]:
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    return sorted(str(f) for f in folder.iterdir() if f.suffix == SUFFIX and not f.name.startswith("."))


def write_shards(ds: Any, out_dir: str | os.PathLike) -> None:
    """The dataset's rows as Parquet files in ``out_dir`` (created), written by the workers."""
    try:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"--out {out_dir}: cannot create the folder ({exc.strerror or exc})") from None
    ds.write_parquet(os.fspath(out_dir))


def _read(path: str, columns: list[str] | None = None) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=columns)


def finished_in_dir(out_dir: str | os.PathLike, topk: int, log: Callable[[str], None] = lambda msg: None) -> set[str]:
    """The files (as :func:`~clfkit.runtime.writers.path_key`) with a prediction row in the shards of
    ``out_dir``; error rows and unreadable shards are removed first (see the module docstring)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    header = csv_header(topk)
    done: set[str] = set()
    for shard in shard_files(out_dir):
        try:
            table = _read(shard)
        except Exception as exc:  # noqa: BLE001 - a torn file raises ArrowInvalid / OSError
            log(f"--skip-existing: {shard} cannot be read ({type(exc).__name__}); removed, its files run again")
            Path(shard).unlink(missing_ok=True)
            continue
        if table.column_names != header:
            raise ConfigError(f"--skip-existing: {shard} has other columns than this run writes "
                              f"({len(table.column_names)} vs {len(header)}); use the same --topk as the run "
                              "that wrote it, or another --out")
        ok = pc.and_(pc.is_null(table["error"]), pc.is_valid(table["pred"]))
        kept = table.filter(ok)
        if kept.num_rows != table.num_rows:
            try:
                with atomic_path(Path(shard)) as tmp:
                    pq.write_table(kept, tmp)
            except OSError as exc:
                raise OutputError(f"--skip-existing: cannot rewrite {shard} ({exc.strerror or exc})") from None
        done.update(path_key(p) for p in kept["path"].to_pylist())
    return done


def count_rows(shards: list[str]) -> tuple[int, int]:
    """(rows, error rows) in ``shards``, from their ``error`` column only."""
    rows = errors = 0
    for shard in shards:
        column = _read(shard, ["error"])["error"]
        rows += len(column)
        errors += len(column) - column.null_count
    return rows, errors
