"""clf-split and clf-infer finish on a folder of 30,000 tiny files, every file accounted for.

Memory is measured by ``benchmarks/scale.py`` (peak RSS at 10,000 vs 100,000 files, in
``benchmarks/results/scale-cpu.md``), not here: this test proves the real commands get through a folder that
size with nothing lost.  The folder and the torch-free tiny model come from that benchmark's builders.
CLFKIT_SCALE_FILES changes the size (100000 for the benchmark's largest folder; 5000 for a quick run).  The
suite's default stays at 30,000 so that the whole suite keeps to its ten minutes on 2 cores (100,000 cost 160 s of
them); the benchmark runs the 100,000.
"""
from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from helpers import REPO

FILES = int(os.environ.get("CLFKIT_SCALE_FILES", "30000"))
BIN = Path(sys.executable).parent


def _benchmark_module():
    spec = importlib.util.spec_from_file_location("clfkit_scale_benchmark", REPO / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_split_and_infer_thirty_thousand_files(tmp_path: Path, report_measurement) -> None:
    scale = _benchmark_module()
    images = scale.make_folder(tmp_path / "images", FILES)
    (images / scale.CLASSES[0] / "zz_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    model = scale.tiny_onnx(tmp_path / "tiny.onnx")

    start = time.perf_counter()
    split = subprocess.run([str(BIN / "clf-split"), str(images), str(tmp_path / "data")], capture_output=True,
                           text=True)
    split_s = time.perf_counter() - start
    assert split.returncode == 0, split.stderr[-2000:]
    assert "Traceback" not in split.stderr and split.stderr.count("zz_broken.jpg") == 1
    with open(tmp_path / "data" / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert len(manifest) == FILES == len({row["source"] for row in manifest})
    assert json.loads((tmp_path / "data" / "split.json").read_text())["quarantined"] == 1
    per_split = Counter(row["split"] for row in manifest)
    assert per_split["train"] == FILES - per_split["val"] - per_split["test"]
    assert abs(per_split["val"] - 0.15 * FILES) <= len(scale.CLASSES)

    out = tmp_path / "preds.csv"
    start = time.perf_counter()
    infer = subprocess.run([str(BIN / "clf-infer"), str(images), "--model", str(model), "--out", str(out),
                            "--device", "cpu", "--no-progress"], capture_output=True, text=True)
    report_measurement(f"{FILES:,} files: clf-split {split_s:.0f} s, clf-infer {time.perf_counter() - start:.0f} s "
                       "(peak memory: python benchmarks/scale.py)")
    assert infer.returncode == 3, infer.stderr[-2000:]  # 3: one file could not be read, all others predicted
    assert "Traceback" not in infer.stderr
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == FILES + 1 == len({row["path"] for row in rows})
    failed = [row for row in rows if row["error"]]
    assert len(failed) == 1 and failed[0]["path"].endswith("zz_broken.jpg")
    assert {row["pred"] for row in rows if not row["error"]} <= set(scale.CLASSES)
