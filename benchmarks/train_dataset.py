"""Benchmark: the default ``clf-train`` against ``--mode head`` on a seed-0 split of a photo folder.

    python benchmarks/train_dataset.py ../shared/data/boats      [--work /tmp/clfkit-train-boats]
    python benchmarks/train_dataset.py ../shared/data/trashnet   [--modes auto,head] [-- EXTRA clf-train OPTIONS]

Runs ``clf-split PHOTOS WORK/data --seed 0`` (near-duplicates grouped, as by default), then for each mode
``clf-train WORK/data --out WORK/run[-MODE]`` as a separate process (wall time measured around it, so model
loading, planning and extraction count), ``clf-export --no-int8`` and ``clf-infer`` on the test split with
``--tta 1`` and ``--tta 5`` (onnxruntime fp32, so the numbers do not depend on which runtime this machine
picks).  Writes ``benchmarks/results/train_<name>.md`` and ``.json``: per mode the validation and test
top-1, test top-1 with ``--tta 5``, macro-F1, wall time, the seconds of each stage, and for partial mode the
plan (cut, views, epochs, why), the cache's memory and the TTA check on validation; the per-class table of the
first mode.  The default mode's run is ``WORK/run`` (what ``benchmarks/boats_cpu.py --run`` takes).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BIN = Path(sys.executable).parent


def _run(*command: str) -> None:
    subprocess.run([str(BIN / command[0]), *command[1:]], check=True, stdout=subprocess.DEVNULL)


def measure(data: Path, work: Path, mode: str, first: bool, extra: list[str]) -> dict:
    run = work / ("run" if first else f"run-{mode}")
    shutil.rmtree(run, ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([str(BIN / "clf-train"), str(data), "--out", str(run), "--mode", mode, *extra], check=True)
    wall = time.perf_counter() - start
    onnx = work / f"{run.name}.onnx"
    _run("clf-export", str(run / "model.pt"), str(onnx), "--no-int8")
    tta = {}
    for n in (1, 5):
        report = work / f"{run.name}-tta{n}"
        _run("clf-infer", "-m", str(onnx), str(data / "test"), "--tta", str(n), "--runtime", "onnxruntime",
             "--precision", "fp32", "--no-progress", "--report", str(report), "-o", str(report) + ".csv")
        tta[n] = json.loads((report / "metrics.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    test = json.loads((run / "report" / "metrics.json").read_text())
    return {
        "mode": mode, "mode_ran": metrics.get("mode"), "mode_reason": metrics.get("mode_reason"),
        "wall_seconds": wall, "val_accuracy": metrics["val_acc"], "test_accuracy": test["accuracy"],
        "test_macro_f1": test["macro_f1"], "test_images": test["num_samples"],
        "onnx_test_accuracy": tta[1]["accuracy"], "onnx_test_accuracy_tta5": tta[5]["accuracy"],
        "timing": metrics.get("timing", {}), "partial": metrics.get("partial"),
        "per_class": test["per_class"], "train_counts": test.get("train_counts", {}),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("photos", type=Path, nargs="?", help="class-per-folder photos (e.g. ../shared/data/boats)")
    parser.add_argument("--name", help="dataset name in the results' file name (default: the folder's name)")
    parser.add_argument("--work", type=Path, help="default: /tmp/clfkit-train-NAME")
    parser.add_argument("--modes", default="auto,head", help="comma-separated --mode values; the first is "
                        "the default run")
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/train_NAME")
    parser.add_argument("train_args", nargs="*", help="extra clf-train options, after --")
    parser.add_argument("--render", type=Path, help="only rewrite the .md from this result .json")
    args = parser.parse_args()
    if args.render:
        args.render.with_suffix(".md").write_text(render(json.loads(args.render.read_text())) + "\n")
        return 0
    if args.photos is None or not args.photos.is_dir():
        print(f"photos not found at {args.photos}", file=sys.stderr)
        return 2
    name = args.name or args.photos.resolve().name
    work = args.work or Path(f"/tmp/clfkit-train-{name}")
    out = args.out or RESULTS / f"train_{name}"
    shutil.rmtree(work, ignore_errors=True)
    data = work / "data"
    _run("clf-split", str(args.photos), str(data), "--seed", "0")
    split = json.loads((data / "split.json").read_text())
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    rows = [measure(data, work, mode, k == 0, args.train_args) for k, mode in enumerate(modes)]

    import torch

    from clfkit.bench.env import cpu_model

    result = {
        "dataset": name, "command": f"python benchmarks/train_dataset.py {args.photos} --modes {args.modes}"
        + (" -- " + " ".join(args.train_args) if args.train_args else ""),
        "split": {"seed": 0, "counts": split["counts"],
                  "near_duplicate_groups": len(split.get("near_duplicate_groups", [])),
                  "near_duplicate_photos": sum(map(len, split.get("near_duplicate_groups", [])))},
        "runs": rows,
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    out.with_suffix(".md").write_text(render(result) + "\n")
    print(render(result))
    return 0


def _stages(timing: dict) -> list[str]:
    """Partial: plan, extract, warm start, train, evaluate; head: the feature extraction of each split."""
    order = ("plan_s", "extract_s", "warm_start_s", "train_s", "evaluate_s")
    if any(k in timing for k in order):
        return [f"{k.removesuffix('_s').replace('_', ' ')} {timing[k]:.0f}" for k in order if k in timing]
    return [f"{k.removesuffix('_seconds')} features {v:.0f}" for k, v in timing.items() if k.endswith("_seconds")]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f} %"


def render(r: dict) -> str:
    m = r["machine"]
    s = r["split"]
    lines = [
        f"# clf-train on {r['dataset']}: default (`--mode auto`) vs the frozen head",
        "",
        f"Made by `{r['command']}` on {m['cpu']} ({m['cores']} cores), torch {m['torch']}. Split: "
        f"`clf-split PHOTOS DATA --seed 0` (70/15/15, stratified; {s['near_duplicate_groups']} near-duplicate "
        f"groups, {s['near_duplicate_photos']} photos, each kept on one side). Test top-1 with and without TTA "
        "comes from `clf-infer` on the exported model (onnxruntime fp32); it equals clf-train's own report.",
        "",
        "| --mode | ran | val | test | test `--tta 5` | macro-F1 | wall of clf-train | stages (s) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in r["runs"]:
        stages = ", ".join(_stages(row["timing"]))
        lines.append(f"| {row['mode']} | {row['mode_ran']} | {_pct(row['val_accuracy'])} | "
                     f"**{_pct(row['onnx_test_accuracy'])}** | **{_pct(row['onnx_test_accuracy_tta5'])}** | "
                     f"{_pct(row['test_macro_f1'])} | {row['wall_seconds']:.0f} s | {stages or '–'} |")
    for row in r["runs"]:
        p = row.get("partial")
        if not p:
            continue
        tta = p.get("tta_val") or {}
        lines += ["", f"Partial fine-tuning ({row['mode']}): {p['reason']}. Trained {p['trained_blocks']} of "
                  f"{p['blocks']} blocks ({', '.join(p['trained_kinds'])}) for {p['epochs_run']} of "
                  f"{p['epochs_planned']} passes over {p['views']} cached views ({p['stopped_by']}); cache "
                  f"{p['cache_mb']:.0f} MB of float16 {tuple(p['cache_shape'])} activations, frozen blocks on "
                  f"{p['prefix_runtime']}; BatchNorm: {p['batchnorm']}; warm start val "
                  f"{_pct(p['warm_start'].get('val_acc'))}. TTA check on validation (`--tta {tta.get('views')}`): "
                  f"{_pct(tta.get('val_acc_center'))} → {_pct(tta.get('val_acc_tta'))} "
                  f"({'helps' if tta.get('helps') else 'does not help'})."]
    first = r["runs"][0]
    lines += ["", f"## Per class (test split, `--mode {first['mode']}`)", "",
              "| class | train images | test images | precision | recall | F1 |", "|---|---:|---:|---:|---:|---:|"]
    for name, c in first["per_class"].items():
        lines.append(f"| {name} | {first['train_counts'].get(name, '')} | {c['support']} | {c['precision']:.3f} | "
                     f"{c['recall']:.3f} | {c['f1']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
