"""Benchmark: ``clf-serve`` with micro-batching (``--max-batch 32``) vs one image per model call (``--max-batch 1``).

    python benchmarks/serve_cpu.py [--model /tmp/clfkit-bench-boats/model.onnx] [--boats ../shared/data/boats]
                                   [--clients 16] [--requests 1000] [--warmup 100] [--photos 64]
                                   [--max-batch 32,1] [--threads N] [--tta 0] [--max-wait-ms 5]

Each setting starts the real ``clf-serve`` on 127.0.0.1 (a free port) in its own process and sends the same
load from this process: ``--clients`` threads, one keep-alive connection each, POST /predict multipart, the
same ``--photos`` boats photos round-robin (read into memory; nothing is copied into the repository).
``--warmup`` requests first (not counted), then ``--requests`` timed ones.  The mean batch size is what the
server's batcher ran during the timed part (from GET /health before and after).

Writes ``benchmarks/results/serve-cpu.md`` and ``.json``: requests/s, latency p50/p90/p99, mean batch size,
the ratio micro-batching / batch 1, the environment and this command.  The load generator shares the CPU with
the server, so absolute numbers are a lower bound; run it on a quiet machine (the load average is recorded).
The default model is the efficientnet-lite2 boats model that ``benchmarks/boats_cpu.py`` exports.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import httpx

from clfkit.bench.env import environment
from clfkit.data.scan import iter_image_files
from clfkit.serve.loadgen import ServerProcess, run_load

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def _photos(root: Path, count: int) -> list[tuple[str, bytes]]:
    """``count`` photos spread evenly over the sorted file list (so every class is in), as (name, bytes)."""
    paths = sorted(iter_image_files(root))
    if not paths:
        raise SystemExit(f"no photos under {root}")
    step = max(1, len(paths) // count)
    return [(p.name, p.read_bytes()) for p in paths[::step][:count]]


def _batching(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/health", timeout=30).json()["batching"]


def measure(model: Path, files: list[tuple[str, bytes]], max_batch: int, args: argparse.Namespace) -> dict[str, Any]:
    server_args = ["--model", model, "--device", "cpu", "--max-batch", max_batch,
                   "--max-wait-ms", args.max_wait_ms, "--tta", args.tta]
    if args.threads:
        server_args += ["--threads", args.threads]
    with ServerProcess(server_args) as server:
        print(f"max_batch {max_batch}: warm-up {args.warmup} requests", file=sys.stderr, flush=True)
        warm = run_load(server.url, files, requests=args.warmup, concurrency=args.clients,
                        time_limit_s=args.time_limit)
        before = _batching(server.url)
        load_before = os.getloadavg()[0]
        result = run_load(server.url, files, requests=args.requests, concurrency=args.clients,
                          time_limit_s=args.time_limit)
        after = _batching(server.url)
        model_info = httpx.get(f"{server.url}/model", timeout=30).json()
    batches = after["batches"] - before["batches"]
    images = after["images"] - before["images"]
    row = {"max_batch": max_batch, **result.as_dict(), "warmup_errors": warm.errors,
           "mean_batch_size": round(images / batches, 3) if batches else None, "model_calls": batches,
           "largest_batch": after["largest_batch"], "load_average_1m_before": round(load_before, 2),
           "load_average_1m_after": round(os.getloadavg()[0], 2), "provider": model_info["provider"]}
    print(f"max_batch {max_batch}: {result.summary()}, mean batch {row['mean_batch_size']}", file=sys.stderr)
    return row


def write_report(out: Path, info: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    by_batch = {r["max_batch"]: r for r in rows}
    ratio = None
    if len(rows) >= 2 and rows[-1]["requests_per_s"]:
        ratio = round(rows[0]["requests_per_s"] / rows[-1]["requests_per_s"], 2)
    data = {**info, "results": rows, "ratio_requests_per_s_first_vs_last": ratio}
    out.with_suffix(".json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    env = info["environment"]
    lines = [
        "# clf-serve on CPU: micro-batching vs one image per model call", "",
        f"Model `{info['model']}` ({info['model_info']}), {info['photos']} boats photos round-robin, "
        f"{info['clients']} concurrent clients (threads, keep-alive), {info['warmup']} warm-up + "
        f"{info['requests']} timed requests per setting, POST /predict multipart, `--max-wait-ms "
        f"{info['max_wait_ms']}`, `--tta {info['tta']}`, onnxruntime threads: {info['threads'] or 'default'}.", "",
        "| --max-batch | requests/s | p50 ms | p90 ms | p99 ms | mean batch | model calls | errors | load before |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['max_batch']} | {r['requests_per_s']:.1f} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['mean_batch_size']} | {r['model_calls']} | {r['errors']} | "
                     f"{r['load_average_1m_before']} |")
    if ratio is not None:
        first, last = rows[0]["max_batch"], rows[-1]["max_batch"]
        lines += ["", f"Throughput `--max-batch {first}` / `--max-batch {last}`: **{ratio}×** "
                      f"(p50 latency {by_batch[first]['p50_ms']:.1f} ms vs {by_batch[last]['p50_ms']:.1f} ms)."]
    lines += ["", "The load generator runs on the same CPU as the server, so it takes cores from it; latency is "
                  "measured per request with `time.perf_counter()` around the whole HTTP exchange.", "",
              "## Environment", "",
              f"- CPU: {env['cpu_model']} ({env['usable_cpus']} usable CPUs, {env['physical_cores']} physical "
              f"cores), {env['platform']}, Python {env['python']}",
              "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items()) if v),
              f"- date (UTC): {env['date_utc']}", "", "## Command", "", "```bash", info["command"], "```", ""]
    out.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("/tmp/clfkit-bench-boats/model.onnx"))
    parser.add_argument("--boats", type=Path, default=REPO.parent / "shared" / "data" / "boats")
    parser.add_argument("--photos", type=int, default=64, help="distinct photos sent round-robin")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per setting")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--max-batch", default="32,1", help="comma-separated --max-batch settings, in order")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads of the server")
    parser.add_argument("--tta", type=int, default=0)
    parser.add_argument("--time-limit", type=float, default=900.0, help="seconds per load run, at most")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve-cpu", help="report path without suffix")
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no model; make it with `python benchmarks/boats_cpu.py` or pass --model")
    files = _photos(args.boats, args.photos)
    settings = [int(x) for x in args.max_batch.split(",") if x.strip()]
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
    rows = [measure(args.model, files, b, args) for b in settings]
    from clfkit.runtime.engine import Engine

    engine = Engine.from_onnx(args.model, device="cpu")
    info = {"model": str(args.model), "model_info": f"{engine.spec.backbone}, {engine.spec.num_classes} classes, "
                                                    f"{engine.spec.input_size} px, {engine.precision}",
            "photos": len(files), "clients": args.clients, "requests": args.requests, "warmup": args.warmup,
            "max_wait_ms": args.max_wait_ms, "threads": args.threads, "tta": args.tta,
            "command": command, "environment": environment(command)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_report(args.out, info, rows)
    print(f"report: {args.out.with_suffix('.md')}", file=sys.stderr)
    return 0 if all(r["errors"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
