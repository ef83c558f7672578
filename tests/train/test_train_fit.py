"""fit(): both modes end to end on tiny generated data, checked against the RUN_DIR contract.

The head-mode run uses the packaged efficientnet_lite0 (real ImageNet weights, offline) at 32 px, so "the
assembled model scores the same on val as the head on cached features" is checked on a genuine backbone.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import draw_image, make_labelled_folder, corrupt_jpeg
from train_helpers import CLASSES, finetune_config, head_config, quiet, split_data

from clfkit.artifacts.checkpoint import CHECKPOINT_FORMAT, RESUME_FORMAT
from clfkit.errors import ConfigError, DataError
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess_batch
from clfkit.spec import ModelSpec
from clfkit.train import loop
from clfkit.models.classifier import load_checkpoint
from clfkit.train.config import TrainConfig
from clfkit.data.layout import read_split_folders
from clfkit.train.trainer import FitResult, fit
from clfkit.train.report import HISTORY_COLUMNS

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

RUN_FILES = ("model.pt", "last.pt", "spec.json", "config.json", "history.csv", "curves.png")
REPORT_FILES = ("metrics.json", "confusion_matrix.csv", "confusion_matrix.png", "per_class.png")


@dataclass
class Run:
    data: Path
    result: FitResult
    config: TrainConfig
    log: list[str]
    broken: Path  # the corrupt training image


@pytest.fixture(scope="module")
def lite_run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    root = tmp_path_factory.mktemp("lite")
    data = split_data(root)
    broken = corrupt_jpeg(data / "train" / "b" / "zz_broken.jpg")
    config = TrainConfig(data=data, out=root / "run", mode="head", backbone="efficientnet_lite0", input_size=32,
                         epochs=6, cache_views=2, patience=0, workers=0, device="cpu", precision="fp32")
    log: list[str] = []
    result = fit(config, progress=False, log=log.append)
    return Run(data=data, result=result, config=config, log=log, broken=broken)


def _history(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "history.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _check_contract(run_dir: Path, with_report: bool = True) -> dict:
    for name in RUN_FILES:
        assert (run_dir / name).is_file(), name
    for name in REPORT_FILES:
        assert (run_dir / "report" / name).is_file() == with_report, name
    assert not list(run_dir.rglob(".*.tmp")), "a temporary file was left behind"
    saved = torch.load(run_dir / "model.pt", map_location="cpu", weights_only=True)  # plain data, no code
    assert saved["format"] == CHECKPOINT_FORMAT
    assert {"spec", "config", "metrics", "state_dict", "arch"} <= set(saved)
    assert ModelSpec.from_dict(saved["spec"]) == ModelSpec.from_json((run_dir / "spec.json").read_text())
    assert saved["config"] == json.loads((run_dir / "config.json").read_text())
    last = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert last["format"] == RESUME_FORMAT and last["epoch"] == len(_history(run_dir))
    return saved


def test_head_run_writes_the_run_dir_contract(lite_run: Run) -> None:
    result = lite_run.result
    saved = _check_contract(result.run_dir)
    assert saved["spec"]["class_names"] == list(CLASSES) and saved["spec"]["input_size"] == 32
    assert saved["spec"]["backbone"] == "efficientnet_lite0"
    assert saved["config"]["mode"] == "head" and saved["config"]["epochs"] == 6
    assert saved["metrics"]["val_acc"] == result.metrics["val_acc"]
    assert saved["metrics"]["best_epoch"] == result.best_epoch
    assert saved["metrics"]["test"]["accuracy"] == result.metrics["test"]["accuracy"]
    assert set(result.files) == {"model", "history", "curves", "report", "metrics", "label_issues", "report_html"}
    page = result.files["report_html"].read_text(encoding="utf-8")  # the page holds the run's own audit
    assert result.files["report_html"].parent == result.run_dir / "report" and "given_label" in page
    assert all(f">{name}<" in page for name in CLASSES)
    assert list((result.run_dir / "cache").glob("features-*.pt"))


def test_history_has_one_row_per_epoch(lite_run: Run) -> None:
    rows = _history(lite_run.result.run_dir)
    with open(lite_run.result.run_dir / "history.csv", newline="") as fh:
        assert tuple(next(csv.reader(fh))) == HISTORY_COLUMNS
    assert [int(r["epoch"]) for r in rows] == list(range(1, 7)) == [h["epoch"] for h in lite_run.result.history]
    assert lite_run.result.epochs_run == 6
    for row in rows:
        assert 0.0 <= float(row["val_acc"]) <= 1.0 and float(row["train_loss"]) > 0 and float(row["lr"]) > 0
    # patience 0 never stops early; the best epoch is the lowest validation loss
    losses = [float(r["val_loss"]) for r in rows]
    assert losses[lite_run.result.best_epoch - 1] == pytest.approx(min(losses), abs=1e-4)


def test_test_report_matches_the_summary(lite_run: Run) -> None:
    report = lite_run.result.run_dir / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"accuracy", "macro_f1", "per_class"} <= set(metrics)
    assert set(metrics["per_class"]) == set(CLASSES)
    assert metrics["accuracy"] == lite_run.result.metrics["test"]["accuracy"]
    test_count = len(read_split_folders(lite_run.data).splits["test"])
    assert metrics["num_samples"] == test_count
    with open(report / "confusion_matrix.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    counts = [int(v) for row in rows[1:] for v in row[1:]]
    assert sum(counts) == test_count


def test_corrupt_image_is_skipped_and_listed(lite_run: Run) -> None:
    with open(lite_run.result.run_dir / "skipped.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["split"], r["path"]) for r in rows] == [("train", str(lite_run.broken))]
    assert rows[0]["reason"]
    assert lite_run.result.metrics["train_counts"] == {"a": 6, "b": 6, "c": 6}  # the broken file is not counted
    assert any("skipped 1 unreadable image" in m for m in lite_run.log)


@torch.no_grad()
def test_assembled_model_scores_like_the_head_on_cached_features(lite_run: Run) -> None:
    """model.pt, rebuilt and fed images through clfkit.vision.preprocess (what export/infer use), gives the val
    accuracy that training measured on cached features, and (nearly) the same logits."""
    run_dir = lite_run.result.run_dir
    loaded = load_checkpoint(run_dir / "model.pt")
    assert not loaded.model.training
    val = read_split_folders(lite_run.data).splits["val"]
    pixels = torch.from_numpy(preprocess_batch([load_rgb(s.path) for s in val], loaded.spec))
    labels = torch.tensor([s.label for s in val])
    logits = loaded.model(pixels)  # (N, C)
    acc = (logits.argmax(1) == labels).float().mean().item()
    assert acc == loaded.metrics["val_acc"] == lite_run.result.metrics["val_acc"]

    cache = next((run_dir / "cache").glob("features-*.pt"))
    stored = torch.load(cache, map_location="cpu", weights_only=True)
    assert torch.equal(stored["val_labels"], labels)
    # on a CPU the frozen backbone ran on onnxruntime, and its features still match PyTorch's assembled model
    assert stored["runtime"] == lite_run.result.metrics["feature_runtime"] == "onnxruntime"
    cached_logits = loaded.model.classify(stored["val"][:, 0])  # (N, F) center-view features
    assert (logits - cached_logits).abs().max().item() < 1e-4
    # and the loss too: the val_loss in model.pt is the assembled model's loss
    loss = torch.nn.functional.cross_entropy(logits, labels).item()
    assert loss == pytest.approx(loaded.metrics["val_loss"], abs=1e-4)


def test_head_mode_leaves_the_backbone_untouched(lite_run: Run) -> None:
    """Frozen and in eval mode: not a single backbone tensor (BatchNorm statistics included) changes."""
    from clfkit.models.registry import create_backbone

    pretrained, _, _ = create_backbone("efficientnet_lite0")
    saved = load_checkpoint(lite_run.result.run_dir / "model.pt").model.backbone.state_dict()
    for key, value in pretrained.state_dict().items():
        assert torch.equal(saved[key], value), key


def test_out_with_a_previous_run_suggests_resume(lite_run: Run) -> None:
    run_dir = lite_run.result.run_dir
    config = TrainConfig(data=lite_run.data, out=run_dir, backbone="efficientnet_lite0", input_size=32)
    with pytest.raises(ConfigError, match=f"--out {run_dir} already holds a training run.*--resume {run_dir}"):
        fit(config, progress=False, log=quiet)


def test_missing_data_fails_before_training(tmp_path: Path, tiny_weights: Path) -> None:
    with pytest.raises(DataError, match="nowhere: data folder not found"):
        fit(head_config(tmp_path / "nowhere", tmp_path / "run", tiny_weights), progress=False, log=quiet)
    assert not (tmp_path / "run" / "model.pt").exists()


def _swapped_val(root: Path) -> Path:
    """Train on classes drawn as kinds 0/1/2, validate on images of the *next* kind: the better the head fits
    train, the worse validation gets, so validation loss stops improving after the first epochs."""
    data = root / "data"
    make_labelled_folder(data / "train", {c: 8 for c in CLASSES}, seed=1)
    for k, name in enumerate(CLASSES):
        folder = data / "val" / name
        folder.mkdir(parents=True)
        for i in range(4):
            draw_image(900 + 10 * k + i, kind=(k + 1) % 3).save(folder / f"v{i}.jpg")
    return data


def test_early_stopping_keeps_the_best_epoch(tmp_path: Path, tiny_weights: Path) -> None:
    log: list[str] = []
    config = head_config(_swapped_val(tmp_path), tmp_path / "run", tiny_weights, epochs=40, patience=2, lr=0.05)
    result = fit(config, progress=False, log=log.append)
    losses = [h["val_loss"] for h in result.history]
    assert result.epochs_run < 40, "early stopping never triggered"
    assert result.epochs_run == result.best_epoch + 2  # stopped after `patience` stale epochs
    assert losses[result.best_epoch - 1] == min(losses)
    assert any(f"early stop after epoch {result.epochs_run}" in m for m in log)
    # model.pt holds the best epoch's weights, not the last epoch's
    assert len(_history(result.run_dir)) == result.epochs_run
    assert result.metrics["val_loss"] == pytest.approx(losses[result.best_epoch - 1], abs=1e-6)
    saved = load_checkpoint(result.run_dir / "model.pt")
    assert saved.metrics["best_epoch"] == result.best_epoch
    assert saved.metrics["val_loss"] == pytest.approx(min(losses), abs=1e-6)
    # no test split: no report, and the rest of the contract still holds
    _check_contract(result.run_dir, with_report=False)
    assert "test" not in result.metrics
    # a run that stopped early is finished: resuming it trains no further epoch
    resumed = fit(TrainConfig(resume=result.run_dir), progress=False, log=quiet)
    assert resumed.epochs_run == result.epochs_run and resumed.best_epoch == result.best_epoch
    assert len(_history(result.run_dir)) == result.epochs_run


def test_auto_split_writes_the_split_into_the_run(tmp_path: Path, tiny_weights: Path) -> None:
    images = make_labelled_folder(tmp_path / "photos", {c: 8 for c in CLASSES})
    config = head_config(images, tmp_path / "run", tiny_weights, auto_split=True, epochs=2, cache_views=1)
    result = fit(config, progress=False, log=quiet)
    with open(tmp_path / "run" / "data" / "manifest.csv", newline="") as fh:
        manifest = list(csv.DictReader(fh))
    assert len(manifest) == 24 and {r["split"] for r in manifest} == {"train", "val", "test"}
    assert result.spec.class_names == CLASSES
    assert (tmp_path / "run" / "report" / "metrics.json").is_file()
    assert sum(result.metrics["train_counts"].values()) == sum(r["split"] == "train" for r in manifest)
    assert list(images.iterdir()) and not (images / "train").exists()  # the user's folder is left alone


def test_head_resume_continues_and_reuses_the_feature_cache(tmp_path: Path, tiny_data: Path, tiny_weights: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after epoch 2 and is resumed ends exactly where an uninterrupted run ends: the schedule
    and the shuffling are functions of the epoch, and the optimizer state comes back from last.pt."""
    options = dict(epochs=5, patience=0)
    reference = fit(head_config(tiny_data, tmp_path / "ref", tiny_weights, **options), progress=False, log=quiet)

    real_epoch = loop.head_epoch

    def dies_in_epoch_3(*args, **kwargs):
        if kwargs["epoch"] == 2:
            raise RuntimeError("simulated crash")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "head_epoch", dies_in_epoch_3)
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(head_config(tiny_data, tmp_path / "run", tiny_weights, **options), progress=False, log=quiet)
    monkeypatch.setattr(loop, "head_epoch", real_epoch)
    assert [int(r["epoch"]) for r in _history(tmp_path / "run")] == [1, 2]

    log: list[str] = []
    resumed = fit(TrainConfig(resume=tmp_path / "run"), progress=False, log=log.append)
    assert any("using cached backbone features" in m for m in log)
    assert resumed.run_dir == tmp_path / "run"
    assert [int(r["epoch"]) for r in _history(tmp_path / "run")] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([h["val_loss"] for h in resumed.history],
                               [h["val_loss"] for h in reference.history], rtol=0, atol=1e-6)
    ref_state = reference.model.state_dict()
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, ref_state[key], rtol=0, atol=1e-6)
    _check_contract(tmp_path / "run")


def test_finetune_run_writes_the_same_contract(tmp_path: Path, tiny_data: Path) -> None:
    log: list[str] = []
    result = fit(finetune_config(tiny_data, tmp_path / "run"), progress=False, log=log.append)
    saved = _check_contract(result.run_dir)
    assert saved["config"]["mode"] == "finetune" and saved["metrics"]["mode"] == "finetune"
    assert saved["spec"]["backbone"] == "timm:resnet10t" and saved["spec"]["input_size"] == 32
    assert result.epochs_run == 2 and [h["epoch"] for h in result.history] == [1, 2]
    assert sum("epoch 1: train loss" in m for m in log) == 1
    assert sorted(result.seen_train_indices) == list(range(18))  # one epoch sees every training image once
    assert not (result.run_dir / "skipped.csv").exists()
    # the rebuilt model gives the val accuracy fit measured
    loaded = load_checkpoint(result.run_dir / "model.pt")
    val = read_split_folders(tiny_data).splits["val"]
    with torch.no_grad():
        logits = loaded.model(torch.from_numpy(preprocess_batch([load_rgb(s.path) for s in val], loaded.spec)))
    acc = (logits.argmax(1) == torch.tensor([s.label for s in val])).float().mean().item()
    assert acc == pytest.approx(result.metrics["val_acc"])
