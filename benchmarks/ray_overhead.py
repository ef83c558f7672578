"""Benchmark: ``clf-infer --ray`` against the local run on the same folder — what Ray costs on one machine, and
the per-actor throughput that the N-node scaling story rests on.

    python benchmarks/ray_overhead.py --model WORK/model.onnx [--images ../shared/data/boats] [--rounds 2]
                                      [--out benchmarks/results/ray-cpu]

In one run, interleaved round by round, each as its own process:

* ``local``: ``clf-infer --model MODEL IMAGES --out preds.csv --no-progress`` (default flags);
* ``ray, fresh local Ray``: the same with ``--ray`` and no address: the command starts a Ray of its own;
* ``ray, running cluster``: ``--ray --ray-address ADDR`` against a cluster this script started once with
  ``ray start --head --num-cpus CORES`` (what a user with a cluster has: no start-up in the job);
* the same with ``--threads T`` (the engine's threads per actor) and with ``--ray-actors 2
  --ray-cpus-per-actor 0.5`` (two actors of 1 CPU would leave no CPU to decode on 2 cores);
* ``steady`` rows: a child process runs the job through the library (:class:`clfkit.cluster.job.RayJob`,
  or :meth:`clfkit.runtime.engine.Engine.predict` for local) on the files, then on the files twice over:
  the difference is what the extra files cost, start-up (actor start, model load, first block) excluded.

Every row set is compared with the local run's (same paths, same top-1). Throughput ratios are against the
local run of the same round. Writes ``OUT.md`` and ``OUT.json``.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))

_SUMMARY = re.compile(r"predicted (\d+) of (\d+) files.* in ([\d.]+) s \(([\d.]+) img/s\)")


def _steady_child(mode: str, model: str, images: str, address: str, actors: int, threads: int) -> None:
    """Run the job through the library on the folder's files once and twice over, and print both times as
    JSON (the ``--child`` mode): the second minus the first is what the extra files cost, start-up excluded."""
    from clfkit.runtime.engine import Engine
    from clfkit.runtime.sources import expand_paths

    files = list(expand_paths([images], True))
    engine = Engine.from_onnx(model)
    if mode == "local":
        def run(items: list) -> int:
            return sum(1 for _ in Engine.from_onnx(model).predict(items, batch_size=32, topk=5))
    else:
        from clfkit.cluster.job import ModelRef, RayJob, RayOptions, connect

        # 2 actors: half a CPU each, so that a read/decode task still fits beside them (clfkit.cluster.job.max_actors)
        options = RayOptions(address=address, actors=actors, cpus_per_actor=1.0 if actors == 1 else 0.5)
        ref = ModelRef(path=str(Path(model).resolve()), spec=engine.spec, input_format=engine.input_format,
                       threads=threads or None)
        summary = connect(options)

        def run(items: list) -> int:
            return sum(1 for _ in RayJob(ref, options, summary).predict(items, batch_size=32, topk=5))
    seconds = {}
    for copies in (1, 2):
        start = time.perf_counter()
        rows = run(files * copies)
        seconds[copies] = time.perf_counter() - start
        assert rows == len(files) * copies
    print(json.dumps({"files": len(files), "once_s": seconds[1], "twice_s": seconds[2]}))


def _steady(mode: str, model: Path, images: Path, address: str = "", actors: int = 1,
            threads: int = 0) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, str(model), str(images), address, str(actors),
               str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"steady child {mode} failed: {done.stderr[-2000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    extra = found["twice_s"] - found["once_s"]
    return {**found, "fixed_s": found["once_s"] - extra,  # what a job costs before its rows: start-up
            "steady_images_per_s": found["files"] / extra if extra > 0 else float("nan")}


def _driver_gather_rate(rows: int = 20000, topk: int = 5, classes: int = 9) -> float:
    """Rows per second the driver turns into CSV rows (Arrow batch → Prediction → writer), on one core: the
    ceiling of a gathered output (``--out preds.csv``) however many actors feed it."""
    import numpy as np
    import pyarrow as pa

    from clfkit.cluster.job import _prediction
    from clfkit.cluster.stages import row_schema
    from clfkit.runtime.writers import open_writer

    schema = row_schema(topk, classes)
    rng = np.random.default_rng(0)
    columns: dict[str, list] = {f.name: [] for f in schema}
    for i in range(rows):
        probs = np.sort(rng.dirichlet(np.ones(classes)))[::-1]
        columns["order"].append(i)
        columns["path"].append(f"/shared/photos/class_{i % classes}/img_{i:08d}.jpg")
        columns["pred"].append(f"class_{i % classes}")
        columns["prob"].append(round(float(probs[0]), 6))
        columns["index"].append(i % classes)
        for n in range(topk):
            columns[f"top{n + 1}"].append(f"class_{(i + n) % classes}")
            columns[f"top{n + 1}_prob"].append(round(float(probs[n]), 6))
        columns["error"].append(None)
        columns["provider"].append("CPUExecutionProvider")
    table = pa.Table.from_pydict(columns, schema=schema)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        with open_writer(Path(folder) / "preds.csv", topk, "CPUExecutionProvider") as writer:
            for batch in table.to_batches(max_chunksize=64):
                for row in batch.to_pylist():
                    writer.write(_prediction(row, topk))
        return rows / (time.perf_counter() - start)


def _clf_infer(name: str, args: list[str], images: Path, out: Path) -> dict[str, Any]:
    command = [str(BIN / "clf-infer"), *args, str(images), "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode not in (0, 3):
        raise SystemExit(f"{name}: clf-infer failed ({done.returncode}): {done.stderr[-2000:]}")
    found = _SUMMARY.search(done.stderr)
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    cluster = next((line for line in done.stderr.splitlines() if "Ray cluster at" in line), "")
    return {"name": name, "command": " ".join(shlex.quote(c) for c in command), "wall_s": wall,
            "rows": len(rows), "images_per_s_wall": len(rows) / wall,
            "job_s": float(found.group(3)) if found else float("nan"),
            "images_per_s_job": float(found.group(4)) if found else float("nan"),
            "cluster": cluster.split("clf-infer: ", 1)[-1],
            "preds": {r["path"]: r["pred"] for r in rows}}


def _start_cluster(cores: int, temp: Path) -> tuple[str, dict[str, str], subprocess.Popen]:
    """``ray start --head --block`` in a session of its own (stopped by :func:`_stop_cluster`, never by
    ``ray stop``, which would stop every Ray on the machine); its address once a driver can connect."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    port = 20000 + os.getpid() % 20000
    temp.mkdir(parents=True, exist_ok=True)
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--block", f"--num-cpus={cores}", f"--port={port}",
                             "--include-dashboard=false", f"--temp-dir={temp}", "--disable-usage-stats"],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    # connect() applies `ray start`'s token rule, as clf-infer does
    probe = ("from clfkit.cluster.job import RayOptions, connect; "
             f"connect(RayOptions(address={address!r}))")
    deadline = time.monotonic() + 90
    while subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True).returncode != 0:
        if head.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the benchmark's Ray head did not come up")
        time.sleep(1)
    return address, env, head


def _stop_cluster(head: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, every process of the head's session (GCS, raylet, workers)."""
    import signal

    def members() -> list[int]:
        found = []
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == head.pid:
                found.append(int(entry))
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while members() and time.monotonic() < deadline:
            time.sleep(0.2)


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        mode, model, images, address, actors, threads = sys.argv[2:8]
        _steady_child(mode, model, images, address, int(actors), int(threads))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "boats")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "ray-cpu")
    args = parser.parse_args()

    from clfkit.bench.env import environment, load_average, usable_cores

    cores = usable_cores()
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="clfkit-ray-bench-"))
    model = ["--model", str(args.model)]
    # The fresh-local-Ray run goes first in each round, with no cluster up: with no address, Ray connects to
    # the latest cluster started on the machine, if any, instead of starting its own.
    fresh = {"ray, fresh local Ray": [*model, "--ray"]}
    on_cluster = {
        "ray, running cluster, 1 actor": ["--ray-actors", "1"],
        f"ray, running cluster, 1 actor, --threads {cores}": ["--ray-actors", "1", "--threads", str(cores)],
        "ray, running cluster, 2 actors of 0.5 CPU": ["--ray-actors", "2", "--ray-cpus-per-actor", "0.5"],
    }
    names = ["local", *fresh, *on_cluster]
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    steady: dict[str, list[dict[str, Any]]] = {"local": [], "ray 1 actor": [], f"ray 1 actor, {cores} threads": [],
                                               "ray 2 actors of 0.5 CPU": []}
    address = ""

    def record(round_: int, name: str, flags: list[str]) -> None:
        runs[name].append(_clf_infer(name, flags, args.images, work / f"preds-{round_}.csv"))
        r = runs[name][-1]
        print(f"round {round_}: {name}: {r['images_per_s_job']:.1f} img/s in the job, "
              f"{r['images_per_s_wall']:.1f} img/s wall", file=sys.stderr)

    for round_ in range(args.rounds):
        record(round_, "local", model)
        for name, flags in fresh.items():
            record(round_, name, flags)
        steady["local"].append(_steady("local", args.model, args.images))
        address, env, head = _start_cluster(cores, Path("/tmp") / f"ray-bench-{os.getpid()}")
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            for name, flags in on_cluster.items():
                record(round_, name, [*model, "--ray", "--ray-address", address, *flags])
            steady["ray 1 actor"].append(_steady("ray", args.model, args.images, address, 1))
            steady[f"ray 1 actor, {cores} threads"].append(_steady("ray", args.model, args.images, address, 1,
                                                                   cores))
            steady["ray 2 actors of 0.5 CPU"].append(_steady("ray", args.model, args.images, address, 2))
        finally:
            _stop_cluster(head)
            os.environ.clear()
            os.environ.update(saved)
        for name, found in steady.items():
            print(f"round {round_}: steady {name}: {found[-1]['steady_images_per_s']:.1f} img/s, start-up "
                  f"{found[-1]['fixed_s']:.1f} s", file=sys.stderr)
    gather = _driver_gather_rate()
    load_after = load_average()

    def best(items: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return max(items, key=lambda r: r[key])

    local = runs["local"]
    reference = local[0]["preds"]
    lines = ["# clf-infer --ray against the local run (CPU)", "",
             f"Images: `{args.images}` ({local[0]['rows']} files), model `{args.model.name}`; {cores} usable "
             f"cores; {args.rounds} rounds, interleaved; the best round of each is shown and ratios are to the "
             f"local run's best. Load average {load_before} before, {load_after} after. Made by "
             f"`python benchmarks/ray_overhead.py --model {args.model} --images {args.images}`.", "",
             "## Whole command", "",
             "`job` is clf-infer's own summary (from the first file listed to the last row written: actor start "
             "and model loads included, Ray's start-up not); `wall` is the process, imports and connect included.",
             ""]
    rows = []
    for name, items in runs.items():
        job, wall = best(items, "images_per_s_job"), best(items, "images_per_s_wall")
        same = sum(reference.get(p) == q for p, q in job["preds"].items())
        rows.append([name, f"{job['images_per_s_job']:.1f}",
                     f"{job['images_per_s_job'] / best(local, 'images_per_s_job')['images_per_s_job']:.2f}",
                     f"{wall['images_per_s_wall']:.1f}",
                     f"{wall['images_per_s_wall'] / best(local, 'images_per_s_wall')['images_per_s_wall']:.2f}",
                     f"{same}/{len(reference)}"])
    lines += _table(["run", "job img/s", "vs local", "wall img/s", "vs local", "same top-1 as local"], rows)
    lines += ["", "## Steady state (start-up excluded)", "",
              "A child process runs the job through the library on the folder's files, then on the files twice "
              "over (each a whole job: actor start and model load included); steady img/s is the extra files "
              "over the extra seconds, start-up is the first job's time minus what its files cost at that rate.",
              ""]
    base = best(steady["local"], "steady_images_per_s")["steady_images_per_s"]
    rows = [[name, f"{best(items, 'steady_images_per_s')['steady_images_per_s']:.1f}",
             f"{best(items, 'steady_images_per_s')['steady_images_per_s'] / base:.2f}",
             f"{min(r['fixed_s'] for r in items):.1f}"] for name, items in steady.items()]
    lines += _table(["run", "steady img/s", "vs local", "start-up s"], rows)
    lines += ["", f"The driver turns {gather:,.0f} rows/s into CSV rows on one core (Arrow batch → Prediction → "
              "writer, 20,000 synthetic rows): the ceiling of a gathered `--out preds.csv|.jsonl`; beyond it, "
              "`--out DIR/` has the workers write Parquet."]
    lines += ["", "Commands:", ""] + [f"- {name}: `{items[0]['command']}`" for name, items in runs.items()]
    data = {"environment": environment(), "load_before": load_before, "load_after": load_after,
            "runs": {name: [{k: v for k, v in r.items() if k != "preds"} for r in items]
                     for name, items in runs.items()},
            "steady": steady, "driver_gather_rows_per_s": gather, "address": address}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
