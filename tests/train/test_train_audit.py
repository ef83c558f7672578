"""The label audit of clf-train (clfkit.train.audit): out-of-fold probabilities on frozen features, the ranked
report/label_issues.csv and .png, cross-class copies listed first, --no-label-audit.

The end-to-end runs use the packaged EfficientNet-Lite0 (real ImageNet weights) at 32 px on generated photos,
one of which is drawn like class a but filed under b, and one photo of a is also copied into c.
"""
from __future__ import annotations

import csv
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers import draw_image, make_labelled_folder
from train_helpers import IMAGE_SIZE, TINY, finetune_config, quiet

from clfkit.cli.train import train_cmd
from clfkit.data.layout import read_split_folders
from clfkit.data.make_split import make_split
from clfkit.data.manifest import read_split_records
from clfkit.errors import ConfigError
from clfkit.models.classifier import build_classifier
from clfkit.report.audit import AUDIT_COLUMNS
from clfkit.train.audit import AUDIT_FOLDS, audit_items, out_of_fold_probs
from clfkit.train.config import TrainConfig
from clfkit.train.distributed import from_rank_order
from clfkit.train.features import extract_features
from clfkit.train.summary import format_fit_summary
from clfkit.train.trainer import FitResult, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

MISFILED = "b/zz_really_a.jpg"  # drawn as class a, filed under b
COPIES = ("a/img_003.jpg", "c/copy_of_a.jpg")  # the same bytes in two classes


@dataclass
class AuditRun:
    data: Path
    result: FitResult
    rows: list[dict[str, str]]
    log: list[str]


def _misfiled_split(root: Path) -> Path:
    images = make_labelled_folder(root / "images", {"a": 10, "b": 10, "c": 10}, size=IMAGE_SIZE)
    draw_image(999, IMAGE_SIZE, kind=0).save(images / MISFILED)
    shutil.copyfile(images / COPIES[0], images / COPIES[1])
    make_split(images, root / "data", progress=False)
    return root / "data"


def _rows(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "report" / "label_issues.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def audit_run(tmp_path_factory: pytest.TempPathFactory) -> AuditRun:
    root = tmp_path_factory.mktemp("audit")
    data = _misfiled_split(root)
    config = TrainConfig(data=data, out=root / "run", mode="head", backbone="efficientnet_lite0", input_size=32,
                         epochs=5, cache_views=1, workers=0, device="cpu", precision="fp32")
    log: list[str] = []
    result = fit(config, progress=False, log=log.append)
    return AuditRun(data=data, result=result, rows=_rows(result.run_dir), log=log)


def test_the_misfiled_photo_is_the_first_suspect_after_the_cross_class_copies(audit_run: AuditRun) -> None:
    manifest = {r["source"]: r["split"] for r in csv.DictReader(open(audit_run.data / "manifest.csv"))}
    assert manifest[MISFILED] in ("train", "val")  # precondition: the split kept it where the audit looks
    rows = audit_run.rows
    assert tuple(rows[0]) == AUDIT_COLUMNS
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1))
    n = sum(1 for split in manifest.values() if split in ("train", "val"))
    assert len(rows) == n  # every train/val photo, none of the test split
    assert {r["split"] for r in rows} == {"train", "val"}
    first = next(r for r in rows if not r["cross_class_group"])
    assert first["path"] == MISFILED and first["given_label"] == "b" and first["suggested_label"] == "a"
    assert float(first["margin"]) < 0 and float(first["given_prob"]) < float(first["suggested_prob"])
    assert Path(first["file"]).is_file() and Path(first["file"]).parent.name == "b"


def test_photos_filed_in_two_classes_are_listed_first_and_share_a_fold(audit_run: AuditRun) -> None:
    top = audit_run.rows[:2]
    assert sorted(r["path"] for r in top) == sorted(COPIES)
    assert {r["cross_class_group"] for r in top} == {COPIES[0]}
    assert {r["given_label"] for r in top} == {"a", "c"}
    assert top[0]["fold"] == top[1]["fold"]  # neither copy is judged by a model trained on the other
    assert not any(r["cross_class_group"] for r in audit_run.rows[2:])


def test_metrics_summary_and_grid_report_the_audit(audit_run: AuditRun) -> None:
    m = audit_run.result.metrics["label_audit"]
    run_dir = audit_run.result.run_dir
    assert m["folds"] == AUDIT_FOLDS and m["images"] == len(audit_run.rows) and m["cross_class_photos"] == 2
    assert m["disagree"] == sum(float(r["margin"]) < 0 for r in audit_run.rows) >= 1
    assert m["features"] == "the training run's frozen features" and m["groups_from_manifest"]
    assert m["top"][0]["path"] in COPIES and 0 < m["oof_accuracy"] <= 1
    assert m["seconds"] >= m["fit_s"] > 0
    assert json.loads((run_dir / "metrics.json").read_text())["label_audit"]["images"] == m["images"]
    assert m["grid_photos"] >= 3 and (run_dir / "report" / "label_issues.png").stat().st_size > 1000
    assert audit_run.result.files["label_issues"] == run_dir / "report" / "label_issues.csv"
    summary = format_fit_summary(audit_run.result)
    assert f"labels:  {m['disagree']} of {m['images']} train/val photos" in summary
    assert str(run_dir / "report" / "label_issues.csv") in summary
    assert any(line.startswith("label audit: ") for line in audit_run.log)
    assert not list((run_dir / "cache").glob("audit-features-*.pt"))  # head mode reused its cached features


def test_a_photos_own_fold_never_trains_on_it() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 60)
    features = rng.normal(size=(60, 8)) + 3 * np.eye(3)[labels] @ rng.normal(size=(3, 8))
    folds = np.arange(60) % 5
    probs = out_of_fold_probs(features, labels, folds, 3)
    assert probs.shape == (60, 3) and np.allclose(probs.sum(1), 1)
    relabelled = labels.copy()
    relabelled[7] = (labels[7] + 1) % 3  # photo 7 (fold 2) gets another label: only models that train on it move
    moved = out_of_fold_probs(features, relabelled, folds, 3)
    assert np.array_equal(moved[folds == 2], probs[folds == 2])  # its own fold's model never saw it
    assert not np.allclose(moved[folds != 2], probs[folds != 2])  # the models that did, changed


def test_audit_items_give_copies_one_fold_unit_and_name_the_source_photo(audit_run: AuditRun) -> None:
    data = read_split_folders(audit_run.data)
    items, labels, units = audit_items(data, read_split_records(audit_run.data))
    assert len(items) == len(data.splits["train"]) + len(data.splits["val"]) == len(labels) == len(units)
    by_path = {item.path: k for k, item in enumerate(items)}
    assert MISFILED in by_path and units[by_path[COPIES[0]]] == units[by_path[COPIES[1]]]
    assert len(set(units.tolist())) == len(items) - 1  # no other photos were joined


def test_from_rank_order_puts_sharded_rows_back_in_sample_order() -> None:
    rows = np.arange(7)
    shards = np.concatenate([rows[r::3] for r in range(3)])  # ranks 0, 1, 2 of 3, concatenated
    assert np.array_equal(from_rank_order(shards, 7, 3), rows)
    assert from_rank_order(shards[:-1], 7, 3) is None  # a photo went missing: not aligned, not used


def test_no_label_audit_skips_it(tmp_path: Path, tiny_data: Path, tiny_weights: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(train_cmd, [str(tiny_data), "--out", str(out), "--mode", "head", "--backbone", TINY,
                                            "--weights", str(tiny_weights), "--epochs", "2", "--input-size", "32",
                                            "--cache-views", "1", "--workers", "0", "--device", "cpu",
                                            "--no-label-audit"])
    assert result.exit_code == 0, result.output
    assert (out / "model.pt").is_file() and not (out / "report" / "label_issues.csv").exists()
    assert "label_audit" not in json.loads((out / "metrics.json").read_text())
    assert json.loads((out / "config.json").read_text())["label_audit"] is False
    assert "labels:" not in result.stdout and "label audit" not in result.stderr


def test_label_audit_option_is_validated() -> None:
    with pytest.raises(ConfigError, match="--label-audit/--no-label-audit"):
        TrainConfig(label_audit="no")  # type: ignore[arg-type]


def test_finetune_audits_on_the_pretrained_backbone_not_the_trained_one(tmp_path: Path, tiny_data: Path,
                                                                         tiny_weights: Path) -> None:
    config = finetune_config(tiny_data, tmp_path / "run", pretrained=True, weights=tiny_weights, epochs=1, lr=0.05)
    result = fit(config, progress=False, log=quiet)
    m = result.metrics["label_audit"]
    assert m["features"] == "a pass of the pretrained backbone over the center views" and m["feature_s"] > 0
    cache = torch.load(next((result.run_dir / "cache").glob("audit-features-*.pt")), weights_only=True)
    data = read_split_folders(tiny_data)
    pretrained, _ = build_classifier(TINY, 3, pretrained=True, weights=tiny_weights)
    expected, _ = extract_features(pretrained.eval(), data.splits["val"], result.spec, progress=False, workers=0)
    trained, _ = extract_features(result.model.eval(), data.splits["val"], result.spec, progress=False, workers=0)
    assert np.allclose(cache["val"].numpy(), expected[:, 0], rtol=1e-4, atol=1e-4)  # onnxruntime vs PyTorch
    assert not np.allclose(cache["val"].numpy(), trained[:, 0], atol=1e-3)
    assert len(_rows(result.run_dir)) == len(data.splits["train"]) + len(data.splits["val"])
