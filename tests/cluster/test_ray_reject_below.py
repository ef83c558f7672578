"""``clf-infer --ray --reject-below`` on the real two-node cluster (tests/cluster/conftest.py): the threshold
reaches the actors through the job, gathered rows and Parquet shards equal the local run's, and the summary
counts the "unknown" rows either way."""
from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import make_labelled_folder

pytestmark = pytest.mark.slow

DRIVER = "from clfkit.cli.infer import infer_cmd; infer_cmd()"


def clf_infer(cluster, *args, ray: bool = True) -> subprocess.CompletedProcess:
    ray_args = ["--ray", "--ray-address", cluster.address] if ray else []
    return subprocess.run([sys.executable, "-c", DRIVER, *map(str, args), "--no-progress", "--device", "cpu",
                           *ray_args], env=cluster.env, capture_output=True, text=True, timeout=240)


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_cluster_rows_say_unknown_where_the_local_ones_do(ray_cluster, tiny, tmp_path):
    import pyarrow.dataset as pds

    photos = make_labelled_folder(tmp_path / "photos", {"cat": 4, "dog": 4, "owl": 4})
    plain = tmp_path / "plain.csv"
    assert clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", plain, ray=False).returncode == 0
    probs = sorted(float(r["prob"]) for r in rows_of(plain))
    p = (probs[5] + probs[6]) / 2  # 6 photos on each side
    assert probs[5] < probs[6]
    local, remote = tmp_path / "local.csv", tmp_path / "cluster.csv"
    args = ("--model", tiny.onnx, photos, "--reject-below", p)
    here = clf_infer(ray_cluster, *args, "--out", local, ray=False)
    run = clf_infer(ray_cluster, *args, "--out", remote, "--ray-actors", 1)
    assert here.returncode == 0 and run.returncode == 0, run.stderr
    want = [(r["path"], r["pred"], r["top1"]) for r in rows_of(local)]
    assert [(r["path"], r["pred"], r["top1"]) for r in rows_of(remote)] == want
    assert sum(pred == "unknown" for _, pred, _ in want) == 6
    assert f"6 of 12 predictions below {p:g}: unknown" in run.stderr
    # --out DIR/: the workers write the shards; same columns, the same decisions, counted from the shards.
    out = tmp_path / "shards"
    shards = clf_infer(ray_cluster, *args, "--out", f"{out}/", "--ray-actors", 1)
    assert shards.returncode == 0, shards.stderr
    table = pds.dataset(out, format="parquet").to_table()
    assert table.column_names == list(rows_of(local)[0])
    assert sorted((r["path"], r["pred"], r["top1"]) for r in table.to_pylist()) == sorted(want)
    assert f"6 of 12 predictions below {p:g}: unknown" in shards.stderr
