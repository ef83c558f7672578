"""clf-train's head mode (frozen packaged backbone on onnxruntime + cached features + linear head) on real boat
photos.

A small subset (4 classes x 32 photos) is assembled from symbolic links in tmp_path and split with clf-split's
make_split: nothing from ../shared is copied.  Skipped when the photos are absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from clfkit.data.make_split import make_split
from clfkit.train.config import TrainConfig
from clfkit.train.trainer import fit

pytestmark = [pytest.mark.integration, pytest.mark.slow,
              pytest.mark.usefixtures("one_torch_thread")]  # one PyTorch thread (conftest.py)

CLASSES = ("cruise_ship", "gondola", "kayak", "sailboat")
PER_CLASS = 32


def _subset(boats: Path, root: Path) -> Path:
    for name in CLASSES:
        folder = root / name
        folder.mkdir(parents=True)
        for photo in sorted(p for p in (boats / name).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))[:PER_CLASS]:
            os.symlink(photo.resolve(), folder / photo.name)
    return root


def test_head_mode_learns_boats(boats_dir: Path, tmp_path: Path) -> None:
    images = _subset(boats_dir, tmp_path / "images")
    split = make_split(images, tmp_path / "data", mode="symlink", progress=False)
    assert split.classes == list(CLASSES) and split.quarantined == []

    config = TrainConfig(data=tmp_path / "data", out=tmp_path / "run", backbone="efficientnet_lite0", mode="head", cache_views=1,
                         epochs=30, patience=0, workers=2, device="cpu", precision="fp32")
    result = fit(config, progress=False, log=lambda _msg: None)

    assert result.spec.input_size == 288 and result.spec.class_names == CLASSES  # 1.3x lite0's 224: frozen
    test = result.metrics["test"]
    assert test["num_samples"] == sum(split.counts[c]["test"] for c in CLASSES)
    assert test["accuracy"] >= 0.7, test  # chance is 0.25
    assert result.metrics["val_acc"] >= 0.7
    report = json.loads((tmp_path / "run" / "report" / "metrics.json").read_text())
    assert report["accuracy"] == test["accuracy"] and set(report["per_class"]) == set(CLASSES)
    # cached features make an epoch far cheaper than a pass through the backbone
    assert result.metrics["timing"]["cached_speedup"] > 10
