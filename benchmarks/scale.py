"""Benchmark: clf-split and clf-infer on folders of 10,000 and 100,000 tiny files — peak memory and wall time.

    python benchmarks/scale.py [--files 10000,100000] [--work /tmp/clfkit-scale]

Builds ``WORK/images-N/<class>/*.jpg`` (10 classes of 16×16 JPEGs: one colour per class, each file with its
own noise, so clf-split sees neither byte-identical files nor near-duplicates) and a tiny ONNX classifier
with clfkit metadata (mean colour → linear layer, built with ``onnx.helper``; no torch), then runs the real
``clf-split`` and ``clf-infer`` commands on each folder.  Each command runs in a fresh process whose peak
resident memory (``VmHWM``) is read when it exits; what should stay flat as the folder grows 10× is the
memory, and what it does grow by is divided by the number of files.  Writes
``benchmarks/results/scale-cpu.md`` and ``.json``.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CLASSES = tuple(f"class_{k}" for k in range(10))

# Runs one console command in this fresh process and reports its peak RSS when it exits (VmHWM is per
# process image and starts afresh at exec, unlike ru_maxrss, which Linux carries over from the parent).
_CHILD = """
import atexit, json, sys
from importlib.metadata import entry_points
def _peak():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            sys.stderr.write("\\nPEAK_RSS_KB " + line.split()[1] + "\\n")
atexit.register(_peak)
(command,) = [e for e in entry_points(group="console_scripts") if e.name == sys.argv[1]]
sys.argv = sys.argv[1:]
command.load()()
"""


def _jpeg(kind: int, number: int = 0) -> bytes:
    rng = np.random.default_rng([kind, number])
    pixels = np.full((16, 16, 3), 40, np.uint8)
    pixels[..., kind % 3] = 200 - 10 * (kind // 3)
    pixels = np.clip(pixels + rng.normal(0, 8, pixels.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def make_folder(root: Path, files: int, classes: tuple[str, ...] = CLASSES) -> Path:
    """``root/<class>/img_NNNNNNN.jpg``: ``files`` different tiny JPEGs spread evenly over ``classes``.

    Each file is drawn with its own noise: copies of one picture (even with unique bytes) would be
    near-duplicates, which clf-split keeps together, in train when the group is that big."""
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
    for i in range(files):
        k = i % len(classes)
        (root / classes[k] / f"img_{i:07d}.jpg").write_bytes(_jpeg(k, i))
    return root


def tiny_onnx(path: Path, classes: tuple[str, ...] = CLASSES, size: int = 16) -> Path:
    """A clfkit ONNX classifier without torch: per-channel mean of the input → a linear layer → logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from clfkit.artifacts.onnx_meta import INPUT_NAME, OUTPUT_NAME
    from clfkit.artifacts.onnx_meta import save_onnx
    from clfkit.spec import ModelSpec

    rng = np.random.default_rng(0)
    weight = rng.normal(0, 1, (3, len(classes))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", [INPUT_NAME], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "weight", "bias"], [OUTPUT_NAME])],
        "scale-tiny",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, size, size])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(classes)])],
        [numpy_helper.from_array(weight, "weight"),
         numpy_helper.from_array(np.zeros(len(classes), np.float32), "bias")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    spec = ModelSpec(class_names=classes, input_size=size, resize_size=size, backbone="scale-tiny")
    onnx.checker.check_model(proto)
    return save_onnx(proto, path, spec, input_format="float32_nchw", precision="fp32")


def run_measured(command: list[str], log: Path) -> dict[str, float]:
    """Run a clfkit console command in a fresh process: wall seconds and peak RSS (MiB)."""
    start = time.perf_counter()
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-c", _CHILD, *command], stdout=fh, stderr=subprocess.PIPE,
                              text=True)
    wall = time.perf_counter() - start
    with open(log, "a") as fh:
        fh.write(done.stderr)
    peak = [line.split()[1] for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB")]
    if done.returncode not in (0, 3) or not peak:
        raise SystemExit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return {"seconds": round(wall, 2), "peak_rss_mb": round(int(peak[-1]) / 1024, 1), "exit_code": done.returncode}


def measure(work: Path, files: int, model: Path) -> list[dict]:
    images = work / f"images-{files}"
    start = time.perf_counter()
    make_folder(images, files)
    made = time.perf_counter() - start
    print(f"{files} files written in {made:.1f} s", file=sys.stderr)
    rows = []
    split = run_measured(["clf-split", str(images), str(work / f"split-{files}")], work / f"split-{files}.log")
    manifest_rows = sum(1 for _ in open(work / f"split-{files}" / "manifest.csv")) - 1
    rows.append({"command": "clf-split", "files": files, "processed": manifest_rows, **split})
    preds = work / f"preds-{files}.csv"
    infer = run_measured(["clf-infer", str(images), "--model", str(model), "--out", str(preds), "--no-progress",
                          "--device", "cpu"], work / f"infer-{files}.log")
    predicted = sum(1 for _ in open(preds)) - 1
    rows.append({"command": "clf-infer", "files": files, "processed": predicted, **infer})
    for row in rows[-2:]:
        row["files_per_s"] = round(row["processed"] / row["seconds"], 1)
        print(json.dumps(row), file=sys.stderr)
    shutil.rmtree(images)
    shutil.rmtree(work / f"split-{files}")
    return rows


def render(rows: list[dict], env: dict, command: str) -> str:
    lines = ["# clf-split and clf-infer on 10,000 and 100,000 files", "",
             f"Made by `{command}` on {env['cpu']} ({env['cores']} cores), Python {env['python']}.", "",
             "Each command is a fresh process; peak RSS is its VmHWM at exit.  Files: 16×16 JPEGs, 10 classes; "
             "clf-infer uses a tiny ONNX model (so decoding, preprocessing, batching and writing dominate).", "",
             "| command | files | processed | wall s | files/s | peak RSS MiB |", "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['command']} | {r['files']:,} | {r['processed']:,} | {r['seconds']:.1f} | "
                     f"{r['files_per_s']:,.0f} | {r['peak_rss_mb']:.1f} |")
    lines.append("")
    by = {(r["command"], r["files"]): r for r in rows}
    sizes = sorted({r["files"] for r in rows})
    if len(sizes) >= 2:
        small, large = sizes[0], sizes[-1]
        lines.append(f"Growth from {small:,} to {large:,} files:")
        lines.append("")
        for name in ("clf-split", "clf-infer"):
            a, b = by[(name, small)], by[(name, large)]
            per_file = (b["peak_rss_mb"] - a["peak_rss_mb"]) * 1024 * 1024 / (large - small)
            lines.append(f"- {name}: {a['peak_rss_mb']:.1f} → {b['peak_rss_mb']:.1f} MiB "
                         f"({b['peak_rss_mb'] / a['peak_rss_mb']:.2f}×, {per_file:,.0f} bytes per extra file)")
        lines.append("")
    lines.append("clf-split must keep one small record per file (hash, size, class) to plan a leak-free, stratified "
                 "split and write the sorted manifest; the images themselves are streamed through a bounded "
                 "thread pool.  clf-infer streams everything: the listing is lazy, a few batches are in flight, "
                 "and rows are written as they are predicted.")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", default="10000,100000", help="comma-separated folder sizes")
    parser.add_argument("--work", type=Path, default=Path("/tmp/clfkit-scale"))
    parser.add_argument("--out", type=Path, default=RESULTS / "scale-cpu")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    model = tiny_onnx(args.work / "tiny.onnx")
    rows = [row for n in (int(x) for x in args.files.split(",")) for row in measure(args.work, n, model)]

    from clfkit.bench.env import cpu_model

    env = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()}
    command = "python benchmarks/scale.py" + ("" if args.files == "10000,100000" else f" --files {args.files}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"rows": rows, "env": env, "command": command}, indent=2)
                                             + "\n")
    args.out.with_suffix(".md").write_text(render(rows, env, command))
    print(render(rows, env, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
