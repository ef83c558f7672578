"""The self-contained ``--embed-preprocess full`` model from Node.js: onnxruntime-node, no Python preprocessing.

The client (full_preprocess_client.js, beside this file) decodes PNGs with pngjs, reads the class names from the
ONNX metadata_props the way the README shows, runs the photo as it is and prints JSON; its labels and
probabilities must be the Python Engine's.  The npm packages are installed once into the pytest cache
(``.pytest_cache/d/onnxruntime-node``), so reruns start at once; without node, npm or a reachable registry the
test is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import version1_spec
from PIL import Image
from tiny_onnx import SPEC, TinyNet

from clfkit.export.graph import export_model
from clfkit.runtime.engine import Engine

CLIENT = Path(__file__).with_name("full_preprocess_client.js")
README = Path(__file__).resolve().parents[2] / "README.md"
PACKAGES = ("onnxruntime-node", "pngjs")
# (width, height): landscape, portrait, odd, smaller than resize_size, a 1:8 strip
SIZES = [(64, 48), (45, 80), (37, 53), (20, 14), (24, 192)]


@pytest.fixture(scope="session")
def node_modules(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run the model from Node.js (not found on PATH)")
    cache = getattr(request.config, "cache", None)  # None when pytest runs with -p no:cacheprovider
    folder = Path(cache.mkdir("onnxruntime-node")) if cache else tmp_path_factory.mktemp("onnxruntime-node")
    if not all((folder / "node_modules" / name / "package.json").is_file() for name in PACKAGES):
        (folder / "package.json").write_text('{"private": true}\n')  # install here, not into a parent folder
        env = {**os.environ, "ONNXRUNTIME_NODE_INSTALL_CUDA": "skip"}  # the CPU binaries only
        try:
            result = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *PACKAGES],
                                    cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {' '.join(PACKAGES)} took over 10 minutes (no network?)")
        if result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            pytest.skip(f"npm install {' '.join(PACKAGES)} failed (no network?): {lines[-1] if lines else '?'}")
    return folder / "node_modules"


# A calibrated spec (the client divides the logits by its temperature) and a version-1 one (no temperature: 1).
SPECS = {"temperature 1.7": SPEC.with_temperature(1.7), "version 1": version1_spec(SPEC)}


@pytest.mark.parametrize("spec_kind", list(SPECS))
def test_node_client_predicts_what_the_python_engine_predicts(node_modules, tmp_path, spec_kind):
    torch.manual_seed(0)
    model = export_model(TinyNet(len(SPEC.class_names)).eval(), SPECS[spec_kind], tmp_path / "full.onnx",
                         embed_preprocess="full")
    rng = np.random.default_rng(0)
    files = []
    for k, (width, height) in enumerate(SIZES):
        pixels = rng.integers(0, 96, (height, width, 3), dtype=np.uint8)
        pixels[..., k % 3] += 150  # a class colour, so the labels differ from photo to photo
        files.append(tmp_path / f"photo_{k}.png")
        Image.fromarray(pixels).save(files[-1])

    result = subprocess.run(["node", str(CLIENT), str(model), *map(str, files)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "NODE_PATH": str(node_modules)}, check=False)
    assert result.returncode == 0, result.stderr
    node = json.loads(result.stdout)

    engine = Engine.from_onnx(model, device="cpu", runtime="onnxruntime")
    python = list(engine.predict(files, keep_probs=True, workers=0))
    assert [r["file"] for r in node] == [p.path for p in python]
    assert [r["label"] for r in node] == [p.label for p in python]
    assert len({p.label for p in python}) > 1
    np.testing.assert_allclose(np.array([r["probs"] for r in node]), np.stack([p.probs for p in python]),
                               atol=1e-4)


def test_the_client_reads_metadata_with_the_readmes_function():
    """What the Node test runs is what the README tells a JavaScript user to write."""
    match = re.search(r"```js\n(function readMetadata.*?\n}\n)", README.read_text(encoding="utf-8"), re.DOTALL)
    assert match, "the README's ONNX metadata section should show function readMetadata in a js block"
    assert match.group(1) in CLIENT.read_text(encoding="utf-8")
