"""``clf-infer --ray`` on a real two-node Ray cluster (tests/cluster/conftest.py) against the local run.

The cluster's workers cannot import torch (the nodes run with a blocker), and neither can the drivers these
tests start, so every passing job here is also a torch-free one.
"""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import draw_image, make_labelled_folder
from zoo_files import make_zoo

pytestmark = pytest.mark.slow

DRIVER = "from clfkit.cli.infer import infer_cmd; infer_cmd()"


def clf_infer(cluster, *args, ray: bool = True, timeout: float = 240) -> subprocess.CompletedProcess:
    ray_args = ["--ray", "--ray-address", cluster.address] if ray else []
    return subprocess.run([sys.executable, "-c", DRIVER, *map(str, args), "--no-progress", "--device", "cpu",
                           *ray_args], env=cluster.env, capture_output=True, text=True, timeout=timeout)


def rows_of(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def assert_same_rows(local: list[dict], cluster: list[dict], topk: int) -> None:
    """Same paths in the same order, same top-1 and error; probabilities within 1e-5."""
    assert [r["path"] for r in cluster] == [r["path"] for r in local]
    for a, b in zip(local, cluster):
        assert (b["pred"], b["error"] or None) == (a["pred"], a["error"] or None), (a, b)
        for key in ["prob", *(f"top{n}_prob" for n in range(1, topk + 1))]:
            if a[key] not in ("", None):
                assert abs(float(a[key]) - float(b[key])) <= 1e-5, (key, a, b)
        assert [b[f"top{n}"] for n in range(1, topk + 1)] == [a[f"top{n}"] for n in range(1, topk + 1)]


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Generated photos of mixed sizes, modes and formats (they must not break Arrow batches)."""
    root = make_labelled_folder(tmp_path_factory.mktemp("cluster") / "photos", {"cat": 12, "dog": 10, "owl": 8})
    draw_image(1, size=(300, 90), kind=0).convert("L").save(root / "cat" / "grey_wide.png")
    draw_image(2, size=(40, 200), kind=1).convert("RGBA").save(root / "dog" / "rgba_tall.png")
    draw_image(3, size=(120, 120), kind=2).convert("P").save(root / "owl" / "palette.gif")
    return root


def test_the_cluster_run_equals_the_local_run(ray_cluster, tiny, photos, tmp_path):
    local, remote = tmp_path / "local.csv", tmp_path / "cluster.csv"
    args = ("--model", tiny.onnx, photos, "--tta", 3, "--topk", 2, "--batch-size", 4)
    here = clf_infer(ray_cluster, *args, "--out", local, ray=False)
    assert here.returncode == 0, here.stderr
    run = clf_infer(ray_cluster, *args, "--out", remote, "--ray-actors", 2)
    assert run.returncode == 0, run.stderr
    assert_same_rows(rows_of(local), rows_of(remote), topk=2)
    assert len(rows_of(remote)) == 33
    assert "2 node(s), 3 CPUs" in run.stderr and "33 rows" in run.stderr
    assert "2 actor process(es)" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_file_uri_runs_on_the_cluster_as_it_runs_here(ray_cluster, tiny, photos, tmp_path):
    # Workers read URIs through pyarrow (no shared folder assumed): rows are the local run's on the same URI.
    uri = photos.as_uri()
    local, remote = tmp_path / "local.csv", tmp_path / "cluster.csv"
    args = ("--model", tiny.onnx, uri, "--tta", 2, "--topk", 2)
    here = clf_infer(ray_cluster, *args, "--out", local, ray=False)
    assert here.returncode == 0, here.stderr
    run = clf_infer(ray_cluster, *args, "--out", remote)
    assert run.returncode == 0, run.stderr
    assert_same_rows(rows_of(local), rows_of(remote), topk=2)
    paths = [r["path"] for r in rows_of(remote)]
    assert len(paths) == 33 and all(p.startswith(f"{uri}/") for p in paths)
    assert f"{uri}/owl/palette.gif" in paths


def test_more_actors_than_leave_room_to_decode_are_refused(ray_cluster, tiny, photos):
    run = clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--ray-actors", 3)  # 3 CPUs in all
    assert run.returncode == 1 and "use --ray-actors 2 or fewer" in run.stderr
    assert "Traceback" not in run.stderr


def test_jsonl_and_labelled_report_are_the_local_ones(ray_cluster, tiny, photos, tmp_path):
    args = ("--model", tiny.onnx, photos, "--topk", 3)
    assert clf_infer(ray_cluster, *args, "--out", tmp_path / "a.jsonl", "--report", tmp_path / "ra",
                     ray=False).returncode == 0
    run = clf_infer(ray_cluster, *args, "--out", tmp_path / "b.jsonl", "--report", tmp_path / "rb")
    assert run.returncode == 0, run.stderr
    local = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    remote = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert [r["path"] for r in remote] == [r["path"] for r in local]
    assert [r["pred"] for r in remote] == [r["pred"] for r in local]
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("ra", "rb"))
    assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert (tmp_path / "ra" / "confusion_matrix.csv").read_text() == \
        (tmp_path / "rb" / "confusion_matrix.csv").read_text()


def test_bad_input_zoo_gives_the_local_error_rows(ray_cluster, tiny, tmp_path):
    zoo = make_zoo(tmp_path / "zoo")
    missing = tmp_path / "zoo" / "cat" / "gone.jpg"  # named explicitly, does not exist
    local, remote = tmp_path / "local.csv", tmp_path / "cluster.csv"
    here = clf_infer(ray_cluster, "--model", tiny.onnx, zoo.root, missing, "--out", local, ray=False)
    run = clf_infer(ray_cluster, "--model", tiny.onnx, zoo.root, missing, "--out", remote)
    assert here.returncode == run.returncode == 3, run.stderr
    a, b = rows_of(local), rows_of(remote)
    assert_same_rows(a, b, topk=3)
    errors = [r for r in b if r["error"]]
    assert len(errors) == len(zoo.bad) + 1 and any("file not found" in r["error"] for r in errors)
    assert f"{len(zoo.bad) + 1} file(s) could not be read" in run.stderr


def test_parquet_shards_hold_the_local_rows_and_continue(ray_cluster, tiny, photos, tmp_path):
    import pyarrow.dataset as pds

    local = tmp_path / "local.csv"
    assert clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", local, ray=False).returncode == 0
    out = tmp_path / "shards"
    run = clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", f"{out}/")
    assert run.returncode == 0, run.stderr
    table = pds.dataset(out, format="parquet").to_table()
    assert table.column_names == list(rows_of(local)[0])
    by_path = {r["path"]: r for r in table.to_pylist()}
    assert len(by_path) == table.num_rows == 33
    for row in rows_of(local):
        assert by_path[row["path"]]["pred"] == row["pred"]
        assert abs(by_path[row["path"]]["prob"] - float(row["prob"])) <= 1e-5
    # New files arrive: --skip-existing runs only those, and every file is in the shards once.
    for i in range(3):
        draw_image(500 + i, kind=1).save(photos / "dog" / f"new_{i}.jpg")
    try:
        again = clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", f"{out}/", "--skip-existing")
        assert again.returncode == 0, again.stderr
        assert "33 file(s) already predicted" in again.stderr and "wrote 3 rows" in again.stderr
        paths = pds.dataset(out, format="parquet").to_table(columns=["path"])["path"].to_pylist()
        assert len(paths) == len(set(paths)) == 36
    finally:
        for i in range(3):
            (photos / "dog" / f"new_{i}.jpg").unlink()


def test_skip_existing_continues_a_cut_csv(ray_cluster, tiny, photos, tmp_path):
    full = tmp_path / "full.csv"
    assert clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", full, ray=False).returncode == 0
    lines = full.read_text().splitlines(keepends=True)
    cut = tmp_path / "cut.csv"
    cut.write_text("".join(lines[:15]) + lines[15][:20])  # 14 whole rows and a torn one
    run = clf_infer(ray_cluster, "--model", tiny.onnx, photos, "--out", cut, "--skip-existing")
    assert run.returncode == 0, run.stderr
    assert "14 file(s) already predicted" in run.stderr
    assert sorted(rows_of(cut), key=lambda r: r["path"]) == sorted(rows_of(full), key=lambda r: r["path"])


def _actor_pids(cluster) -> list[int]:
    """The processes of the cluster's model actors (Ray titles them ray::MapWorker(MapBatches(Predictor)))."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if b"Predictor" in cmd and cmd.startswith(b"ray::"):
                found.append(int(entry))
    return found


def test_a_killed_actor_is_retried_and_every_file_is_written_once(ray_cluster, tiny, tmp_path):
    photos = make_labelled_folder(tmp_path / "many", {"cat": 300, "dog": 300}, size=(160, 120))
    out = tmp_path / "preds.csv"
    before = set(_actor_pids(ray_cluster))
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, "--model", str(tiny.onnx), str(photos), "--out",
                             str(out), "--no-progress", "--device", "cpu", "--ray", "--ray-address",
                             ray_cluster.address, "--ray-actors", "1", "--batch-size", "1", "--tta", "8"],
                            env=ray_cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (out.is_file() and len(out.read_text().splitlines()) > 20):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no rows were written"
            time.sleep(0.05)
        victims = [p for p in _actor_pids(ray_cluster) if p not in before]
        assert victims, "no model actor process found"
        os.kill(victims[0], signal.SIGKILL)
        rows_at_kill = len(out.read_text().splitlines()) - 1
        _, stderr = proc.communicate(timeout=240)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert rows_at_kill < 600, "the job ended before the actor was killed"
    paths = [r["path"] for r in rows_of(out)]
    assert len(paths) == len(set(paths)) == 600
    assert all(r["pred"] and not r["error"] for r in rows_of(out))
    assert "2 actor process(es)" in stderr  # the killed one and its restart


def test_workers_cannot_import_torch(ray_cluster):
    code = f"""
import ray
ray.init(address={ray_cluster.address!r}, logging_level="ERROR")
@ray.remote(num_cpus=0)
def try_torch():
    try:
        import torch
        return "imported"
    except ImportError as exc:
        return str(exc)
print(ray.get(try_torch.remote()))
"""
    result = subprocess.run([sys.executable, "-c", code], env=ray_cluster.env, capture_output=True, text=True,
                            timeout=120)
    assert "torch is blocked here" in result.stdout, result.stderr
