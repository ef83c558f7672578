"""Benchmark: the default ``clf-train`` boats model on this CPU: clfkit's onnxruntime vs PyTorch and other peers.

PyTorch baseline vs onnxruntime, and the strongest peers (torch.compile, OpenVINO used directly):

    python benchmarks/boats_cpu.py [--run RUN_DIR] [--data SPLIT_DIR] [--work /tmp/clfkit-bench-boats]
                                   [--boats ../shared/data/boats] [--peers torch-compile,openvino]
                                   [-- extra clf-bench options]

Without ``--run`` it first makes the model the way ``benchmarks/train_dataset.py`` does: ``clf-split BOATS
WORK/data --seed 0`` and a default ``clf-train WORK/data --out WORK/run``.  Then, each as its own process:

    clf-export RUN/model.pt WORK/model.onnx --int8 --calibration DATA/train
    clf-export RUN/model.pt WORK/model-uint8.onnx --embed-preprocess --no-int8
    clf-bench  RUN/model.pt WORK/model.onnx DATA --int8 WORK/model.int8.onnx \\
               --variant WORK/model-uint8.onnx --peers torch-compile,openvino --out WORK/bench

and copies the report to ``benchmarks/results/boats-cpu.md`` (+ ``.json``, ``-latency.png``,
``-throughput.png``).  Run it on a quiet machine: the load average is recorded in the report.

The peers are named, not left to clf-bench's default, so a published report never quietly lacks one: a peer that
cannot run here stops the benchmark with the reason (``--peers none`` leaves them out).  torch.compile adds its
compile time (minutes on a cold inductor cache) before the timed part; it is reported, not timed.
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent
PEERS = ("torch-compile", "openvino")  # clf-bench's peers (clfkit.bench.peers.PEERS), all of them by default


def _run(*command: str | Path) -> None:
    printable = " ".join(str(c) for c in command)
    print(f"$ {printable}", file=sys.stderr, flush=True)
    subprocess.run([str(c) for c in command], check=True)


def _data_of(run: Path) -> Path | None:
    try:
        return Path(json.loads((run / "config.json").read_text())["data"])
    except (OSError, KeyError, ValueError):
        return None


def _settle(limit_s: float = 240.0) -> None:
    """Wait (up to ``limit_s``) for the load left by the export steps to decay, so clf-bench starts on a quiet
    machine: its report flags a 1-minute load average above half the CPU count as a busy machine."""
    import os
    import time

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    deadline = time.monotonic() + limit_s
    while os.getloadavg()[0] > 0.5 * cpus and time.monotonic() < deadline:
        time.sleep(5)
    print(f"load average before clf-bench: {os.getloadavg()[0]:.2f} on {cpus} CPUs", file=sys.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boats", type=Path, default=REPO.parent / "shared" / "data" / "boats")
    parser.add_argument("--work", type=Path, default=Path("/tmp/clfkit-bench-boats"))
    parser.add_argument("--run", type=Path, default=None, help="an existing clf-train run folder (skip training)")
    parser.add_argument("--data", type=Path, default=None, help="its clf-split folder [default: from RUN/config.json]")
    parser.add_argument("--out", type=Path, default=RESULTS / "boats-cpu", help="results path without extension")
    parser.add_argument("--peers", default=",".join(PEERS),
                        help="clf-bench --peers: the peers measured beside clfkit, or none [default: %(default)s]")
    parser.add_argument("bench_args", nargs="*", help="extra clf-bench options, after --")
    args = parser.parse_args()

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    run, data = args.run, args.data
    if run is None:
        if not args.boats.is_dir():
            print(f"boats photos not found at {args.boats}", file=sys.stderr)
            return 2
        data, run = work / "data", work / "run"
        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(run, ignore_errors=True)
        _run(BIN / "clf-split", args.boats, data, "--seed", "0")
        _run(BIN / "clf-train", data, "--out", run)
    data = data or _data_of(run)
    if data is None or not (data / "train").is_dir():
        print(f"cannot find the run's clf-split folder; pass --data (got {data})", file=sys.stderr)
        return 2

    onnx, uint8 = work / "model.onnx", work / "model-uint8.onnx"
    _run(BIN / "clf-export", run / "model.pt", onnx, "--int8", "--calibration", data / "train")
    _run(BIN / "clf-export", run / "model.pt", uint8, "--embed-preprocess", "--no-int8")
    bench = work / "bench"
    _settle()
    # --peers or --no-peers after -- wins (clf-bench refuses both together)
    own = any(a == "--no-peers" or a.startswith("--peers") for a in args.bench_args)
    peers = [] if own else ["--peers", args.peers]
    _run(BIN / "clf-bench", run / "model.pt", onnx, data, "--int8", work / "model.int8.onnx", "--variant", uint8,
         *peers, "--out", bench, *args.bench_args)

    out = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    stem = out.name
    text = (bench / "report.md").read_text(encoding="utf-8")
    text = text.replace("](latency.png)", f"]({stem}-latency.png)").replace("](throughput.png)",
                                                                           f"]({stem}-throughput.png)")
    command = shlex.join(["python", "benchmarks/boats_cpu.py", *sys.argv[1:]])
    text = text.replace("\n\n", f"\n\nReproduce: `{command}` (see the script's docstring for the steps).\n\n", 1)
    out.with_suffix(".md").write_text(text, encoding="utf-8")
    shutil.copyfile(bench / "results.json", out.with_suffix(".json"))
    shutil.copyfile(bench / "latency.png", out.with_name(f"{stem}-latency.png"))
    shutil.copyfile(bench / "throughput.png", out.with_name(f"{stem}-throughput.png"))
    print(f"wrote {out.with_suffix('.md')} (+ .json, -latency.png, -throughput.png)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
