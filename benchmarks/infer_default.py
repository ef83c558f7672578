"""Benchmark: ``clf-infer`` with default flags, end to end on a whole folder, against the model-only speed of the
runtimes on the same file — the "default path" targets of the fastest-CPU-path work.

    python benchmarks/infer_default.py --model WORK/model.onnx --images ../shared/data/boats [--rounds 2]
                                       [--threads 2] [--out benchmarks/results/infer-default-cpu]

In one run, interleaved round by round:

* ``clf-infer --model MODEL IMAGES --out preds.csv --no-progress`` as its own process, with default flags
  (``--runtime auto --precision auto``: what a user gets), timed as process wall time, start-up included,
  and its peak RSS (``ru_maxrss`` of the child);
* model-only batch-32 and batch-1 speed, in this process, of: OpenVINO with its own defaults on the plain
  float32 file (``compile_model(read_model(MODEL), "CPU")``, only the thread count set) — the target's
  reference —, OpenVINO fp32, onnxruntime fp32, and the same runtimes on ``MODEL.int8.onnx`` when it exists;
* eager PyTorch fp32 batch-1 latency on the checkpoint when ``--checkpoint`` is given.

The report (``OUT.md`` + ``OUT.json``) gives the e2e images/s, its ratio to each model-only number, the choice
clf-infer printed, top-1 agreement of its predictions with onnxruntime fp32, and the environment.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "src"))


def _model_only(call: Callable[[], Any], seconds: float = 8.0, min_runs: int = 3) -> float:
    """Median seconds per call after one warm-up call."""
    call()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < seconds:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _runtimes(model: Path, threads: int) -> dict[str, Callable[[np.ndarray], Any]]:
    import onnxruntime as ort
    import openvino as ov

    core = ov.Core()

    def openvino(path: Path, config: dict[str, Any]) -> Callable[[np.ndarray], Any]:
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_NUM_THREADS": threads, **config})
        request = compiled.create_infer_request()
        openvino.precision[path.name + str(config)] = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
        return lambda x: request.infer({0: x})

    openvino.precision = {}  # type: ignore[attr-defined]

    def onnxruntime(path: Path) -> Callable[[np.ndarray], Any]:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})

    found = {"openvino default fp32-file": openvino(model, {}),
             "openvino fp32": openvino(model, {"INFERENCE_PRECISION_HINT": "f32"}),
             "onnxruntime fp32": onnxruntime(model)}
    int8 = model.with_name(model.name[: -len(".onnx")] + ".int8.onnx")
    if int8.is_file():
        found["openvino int8"] = openvino(int8, {})
        found["onnxruntime int8"] = onnxruntime(int8)
    return found


def _clf_infer(model: Path, images: Path, out: Path, threads: int | None) -> dict[str, Any]:
    command = [str(BIN / "clf-infer"), "--model", str(model), str(images), "--out", str(out), "--no-progress"]
    if threads:
        command += ["--threads", str(threads)]
    rss_file = out.with_suffix(".rss")
    # GNU time reports the peak RSS of the program it execs; a forked child's own ru_maxrss would also count
    # the pages of this (big, runtime-holding) process it was forked from.
    timed = ["/usr/bin/time", "-f", "%M", "-o", str(rss_file), *command] if Path("/usr/bin/time").exists() \
        else command
    start = time.perf_counter()
    done = subprocess.run(timed, capture_output=True, text=True)
    wall = time.perf_counter() - start
    stderr = done.stderr
    if done.returncode not in (0, 3):
        raise SystemExit(f"clf-infer failed ({done.returncode}): {stderr[-2000:]}")
    peak_kb = float(rss_file.read_text().split()[-1]) if rss_file.exists() else float("nan")
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    choice = next((line for line in stderr.splitlines() if line.startswith("clf-infer: runtime ")), "")
    return {"command": " ".join(shlex.quote(c) for c in command), "wall_s": wall, "rows": len(rows),
            "errors": sum(1 for r in rows if r["error"]), "images_per_s": len(rows) / wall,
            "peak_rss_mb": peak_kb / 1024, "choice": choice,
            "provider": rows[0]["provider"] if rows else "", "preds": {r["path"]: r["pred"] for r in rows}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "boats")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="model threads (default: usable cores)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "infer-default-cpu")
    args = parser.parse_args()

    from clfkit.bench.env import environment, load_average, usable_cores
    from clfkit.runtime.engine import Engine

    threads = args.threads or usable_cores()
    load_before = load_average()
    size = Engine.from_onnx(args.model, runtime="onnxruntime", device="cpu").spec.input_size
    batches = {b: np.random.default_rng(0).standard_normal((b, 3, size, size)).astype(np.float32) for b in (1, 32)}
    runtimes = _runtimes(args.model, threads)
    model_only: dict[str, dict[int, list[float]]] = {name: {1: [], 32: []} for name in runtimes}
    e2e: list[dict[str, Any]] = []
    work = Path(os.environ.get("TMPDIR", "/tmp")) / "clfkit-infer-default"
    work.mkdir(parents=True, exist_ok=True)
    for round_ in range(args.rounds):
        e2e.append(_clf_infer(args.model, args.images, work / f"preds-{round_}.csv", args.threads))
        print(f"round {round_}: clf-infer {e2e[-1]['images_per_s']:.1f} img/s ({e2e[-1]['choice']})", file=sys.stderr)
        for name, run in runtimes.items():
            for b, x in batches.items():
                model_only[name][b].append(_model_only(lambda run=run, x=x: run(x)))
            print(f"  {name}: {32 / model_only[name][32][-1]:.1f} img/s at batch 32", file=sys.stderr)
    torch_b1 = None
    if args.checkpoint is not None:
        import torch

        from clfkit.models.classifier import load_checkpoint

        torch.set_num_threads(threads)
        model = load_checkpoint(args.checkpoint).model.eval()
        x = torch.from_numpy(batches[1])
        with torch.no_grad():
            torch_b1 = _model_only(lambda: model(x))

    # The reference run of the fp32 file on onnxruntime gives the agreement of clf-infer's predictions.
    reference = Engine.from_onnx(args.model, runtime="onnxruntime", precision="fp32", device="cpu", threads=threads)
    paths = list(e2e[0]["preds"])
    ref = {p.path: p.label for p in reference.predict(paths, batch_size=32)}
    agree = sum(1 for p in paths if ref.get(p) == e2e[0]["preds"][p]) / max(1, len(paths))

    best_e2e = max(r["images_per_s"] for r in e2e)
    speeds = {name: {"batch32_img_s": 32 / min(v[32]), "batch1_ms": 1000 * min(v[1])} for name, v in model_only.items()}
    ov_ref = speeds["openvino default fp32-file"]["batch32_img_s"]
    # "clf-infer: runtime onnxruntime, fp32 on cpu: …" names the runtime and precision clf-infer ran; with a
    # variant file chosen (int8) its row is that runtime's int8 row.
    words = e2e[0]["choice"].replace(",", " ").split()
    ran = (words[2], words[3]) if len(words) > 3 else ("", "")
    chosen = next((n for n in speeds if n.startswith(ran[0]) and n.endswith(ran[1])), None)
    result = {
        "schema": "clfkit.infer-default/1", "environment": environment(" ".join(sys.argv)),
        "load_before": load_before, "load_after": load_average(), "threads": threads,
        "clf_infer": [{k: v for k, v in r.items() if k != "preds"} for r in e2e],
        "e2e_images_per_s": best_e2e, "model_only": speeds,
        "model_only_rounds": {name: {"batch32_img_s": [32 / t for t in v[32]], "batch1_ms": [1000 * t for t in v[1]]}
                              for name, v in model_only.items()},
        "ratio_e2e_vs_openvino_default_model_only": best_e2e / ov_ref,
        "chosen_backend": chosen,
        "e2e_share_of_chosen_model_only": best_e2e / speeds[chosen]["batch32_img_s"] if chosen else None,
        "agreement_with_onnxruntime_fp32": agree, "pytorch_eager_fp32_batch1_ms": 1000 * torch_b1 if torch_b1 else None,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    args.out.with_suffix(".md").write_text(_markdown(result), encoding="utf-8")
    print(_markdown(result))
    return 0


def _markdown(r: dict[str, Any]) -> str:
    env = r["environment"]
    first = r["clf_infer"][0]
    lines = [
        "# clf-infer with default flags, end to end, vs model-only runtimes",
        "",
        f"Command: `{env.get('command')}`  ",
        f"CPU: {env.get('cpu_model')} ({', '.join(env.get('cpu_features') or []) or 'no AVX-512/AMX'}), "
        f"{r['threads']} threads; load average before {r['load_before']}, after {r['load_after']}",
        "",
        f"clf-infer: `{first['command']}`  ",
        f"its choice: `{first['choice']}`; provider in every row: `{first['provider']}`",
        "",
        "| clf-infer round | wall s (start-up included) | rows | img/s | peak RSS MB |",
        "|---|---|---|---|---|",
    ]
    for i, e in enumerate(r["clf_infer"]):
        rss = f"{e['peak_rss_mb']:.0f}" if e["peak_rss_mb"] else "–"
        lines.append(f"| {i} | {e['wall_s']:.1f} | {e['rows']} | {e['images_per_s']:.1f} | {rss} |")
    lines += ["", "Best of the rounds for each (the rounds' spread in brackets: this machine is shared and noisy).", "",
              "| model-only (same run) | batch 1 ms | batch 32 img/s | clf-infer e2e / this |", "|---|---|---|---|"]
    for name, s in r["model_only"].items():
        spread = r["model_only_rounds"][name]["batch32_img_s"]
        lines.append(f"| {name} | {s['batch1_ms']:.1f} | {s['batch32_img_s']:.1f} "
                     f"({min(spread):.1f}–{max(spread):.1f}) | {r['e2e_images_per_s'] / s['batch32_img_s']:.2f}× |")
    lines += [
        "",
        f"- **clf-infer e2e vs OpenVINO-default model-only batch 32 on the fp32 file: "
        f"{r['ratio_e2e_vs_openvino_default_model_only']:.2f}×** (target ≥ 1.0×)",
        f"- e2e as a share of the chosen runtime's model-only batch-32 throughput ({r['chosen_backend']}): "
        + (f"{r['e2e_share_of_chosen_model_only']:.0%}" if r["e2e_share_of_chosen_model_only"] else "–")
        + " (target ≥ 90 %)",
        "- top-1 agreement of clf-infer's predictions with onnxruntime fp32: "
        f"{r['agreement_with_onnxruntime_fp32']:.2%}",
    ]
    if r["pytorch_eager_fp32_batch1_ms"]:
        chosen = r["model_only"].get(r["chosen_backend"] or "", {})
        if chosen:
            lines.append(f"- batch-1 latency, eager PyTorch fp32 {r['pytorch_eager_fp32_batch1_ms']:.1f} ms vs the "
                         f"chosen runtime {chosen['batch1_ms']:.1f} ms: "
                         f"{r['pytorch_eager_fp32_batch1_ms'] / chosen['batch1_ms']:.2f}× lower (target ≥ 5×)")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
