"""The inference side (spec, images, preprocessing, split) must work on machines without torch installed."""
from __future__ import annotations

from helpers import assert_runs_without_torch, run_without_torch

TORCH_FREE_MODULES = [
    "clfkit",
    "clfkit.errors",
    "clfkit.spec",
    "clfkit.api",
    "clfkit.io",
    "clfkit.vision.images",
    "clfkit.vision.preprocess",
    "clfkit.vision.augment",
    "clfkit.vision.tta",
    "clfkit.vision.postprocess",
    "clfkit.report.calibration",
    "clfkit.report.metrics",
    "clfkit.report.intervals",
    "clfkit.artifacts.onnx_meta",
    "clfkit.artifacts.onnx_file",
    "clfkit.data.layout",
    "clfkit.data.synthetic",
    "clfkit.models.names",
    "clfkit.train",
    "clfkit.train.config",
    "clfkit.export",
    "clfkit.bench",
    "clfkit.cli.infer",
    "clfkit.cluster",
    "clfkit.cluster.stages",
    "clfkit.cluster.job",
    "clfkit.cluster.parquet",
    "clfkit.cluster.infer",
    "clfkit.runtime.uris",
    "clfkit.runtime.explain",
    "clfkit.report.coverage",
    "clfkit.runtime.records",
    "clfkit.report.html",
    "clfkit.cli.train",
    "clfkit.data.scan",
    "clfkit.data.split",
    "clfkit.data.make_split",
    "clfkit.data.manifest",
    "clfkit.report.audit",
]


def test_the_blocker_really_blocks_torch():
    for name in ("torch", "torchvision", "timm", "torch.nn"):
        result = run_without_torch(f"import {name}")
        assert result.returncode != 0, f"`import {name}` succeeded inside the torch blocker"
        assert "torch is blocked here" in result.stderr


def test_torch_free_modules_import_without_torch():
    assert_runs_without_torch(f"import {', '.join(TORCH_FREE_MODULES)}\n")


def test_split_and_preprocessing_run_without_torch(tmp_path):
    # Importing is not enough: a lazy `import torch` inside a function would only fail when it runs.
    code = f"""
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess
from clfkit.vision.tta import tta_views
from clfkit.data.make_split import make_split, format_summary

root = Path({str(tmp_path)!r})
for k, name in enumerate(["cat", "dog"]):
    (root / "src" / name).mkdir(parents=True)
    for i in range(4):
        Image.new("RGB", (20 + i, 16), (60 * k, 10 * i, 90)).save(root / "src" / name / f"{{i}}.png")
result = make_split(root / "src", root / "dst", mode="copy", progress=False)
assert "total" in format_summary(result)
spec = ModelSpec(class_names=result.classes, input_size=8, resize_size=10)
image = load_rgb(next((root / "dst" / "train" / "cat").iterdir()))
assert preprocess(image, spec).shape == (3, 8, 8)
assert len(tta_views(image, spec, 10)) == 10
assert "torch" not in sys.modules
"""
    assert_runs_without_torch(code)
