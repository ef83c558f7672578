"""clf-export on the real packaged EfficientNet-Lite0 backbone and real boats photos (skipped without them)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from export_run import fit_head

from clfkit.cli.export import export_cmd
from clfkit.data.layout import list_images
from clfkit.spec import ModelSpec
from clfkit.artifacts.checkpoint import save_checkpoint
from clfkit.models.classifier import build_classifier

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _link_photos(pairs: list[tuple[Path, int]], root: Path, classes: list[str]) -> Path:
    for path, label in pairs:
        (root / classes[label]).mkdir(parents=True, exist_ok=True)
        os.symlink(path, root / classes[label] / path.name)
    return root


def test_lite0_export_verifies_on_real_photos(boats_dir: Path, tmp_path: Path):
    classes = sorted(p.name for p in boats_dir.iterdir() if p.is_dir())
    picked = list_images(boats_dir, 5 * len(classes) + 32, classes)  # round robin: every class in both sets
    head_photos, verify_photos = picked[: 5 * len(classes)], picked[5 * len(classes):]
    model, defaults = build_classifier("efficientnet_lite0", len(classes), "linear", pretrained=True)
    spec = ModelSpec(class_names=tuple(classes), backbone="efficientnet_lite0", **defaults.spec_fields())
    model.eval()
    fit_head(model, spec, images=[p for p, _ in head_photos], labels=[y for _, y in head_photos])
    checkpoint = save_checkpoint(tmp_path / "run" / "model.pt", model, spec, config={"data": "gone"})
    verify_dir = _link_photos(verify_photos, tmp_path / "verify", classes)

    out = tmp_path / "export" / "boats.onnx"
    result = CliRunner().invoke(export_cmd, [str(checkpoint), str(out), "--verify", str(verify_dir)])
    print(result.output)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "export" / "boats.verify.json").read_text())["reports"][0]
    assert report["images"] == 32 and report["passed"]
    assert report["agreement"] == 1.0 and report["max_abs_prob"] <= 1e-4
    assert report["torch_accuracy"] == report["onnx_accuracy"]
