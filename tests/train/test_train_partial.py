"""--mode partial (and auto, which picks it on a CPU): the last blocks fine-tune on cached activations.

The model is the packaged EfficientNet-Lite0 with its real ImageNet weights at 32 px on the tiny split, so the
frozen blocks are genuinely pretrained and what must stay frozen can be checked against the packaged weights.
"""
from __future__ import annotations

import csv
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn
from train_helpers import quiet

from clfkit.cli.train import train_cmd
from clfkit.data.layout import read_split_folders
from clfkit.errors import ConfigError
from clfkit.models.classifier import Classifier, build_classifier, load_checkpoint
from clfkit.models.stages import backbone_blocks
from clfkit.train.config import TrainConfig
from clfkit.train.partial import _measure, _timed_cut_plan, stochastic_depth
from clfkit.train.plan import plan_partial
from clfkit.train.trainer import fit, resolve_mode
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess
from helpers import sigkill_when

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LITE0 = "efficientnet_lite0"


def _config(data: Path, out: Path, **options) -> TrainConfig:
    base = dict(data=data, out=out, backbone=LITE0, input_size=32, epochs=2, workers=0, device="cpu",
                precision="fp32", time_budget="10m", batch_size=8)
    return TrainConfig(**{**base, **options})


@pytest.fixture(scope="module")
def partial_run(tmp_path_factory: pytest.TempPathFactory, tiny_data: Path):
    out = tmp_path_factory.mktemp("partial") / "run"
    return fit(_config(tiny_data, out), progress=False, log=quiet)


def test_auto_on_a_cpu_runs_partial_and_says_why(partial_run) -> None:
    m = partial_run.metrics
    assert m["mode_requested"] == "auto" and m["mode"] == "partial" and "CPU" in m["mode_reason"]
    p = m["partial"]
    assert p["views"] >= 2 and p["epochs_run"] == 2 and p["prefix_runtime"] == "onnxruntime"
    assert set(m["timing"]) >= {"plan_s", "extract_s", "warm_start_s", "train_s", "evaluate_s"}
    assert p["cache_mb"] > 0 and "frozen" in p["batchnorm"] and p["budget_s"] == 600
    tta = p["tta_val"]  # training measured on the validation split whether --tta 5 helps this model
    assert tta["views"] == 5 and tta["view_names"][:3] == ["center", "hflip", "zoom"]
    assert tta["val_acc_center"] == pytest.approx(m["val_acc"]) and tta["helps"] == (tta["val_acc_tta"] > tta["val_acc_center"])


def test_only_the_tail_trains_and_batchnorm_statistics_stay(partial_run) -> None:
    pretrained, _ = build_classifier(LITE0, 3)
    cut = partial_run.metrics["partial"]["cut"]
    ours = backbone_blocks(partial_run.model.backbone)
    theirs = backbone_blocks(pretrained.backbone)
    for k, (a, b) in enumerate(zip(ours, theirs)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            if k < cut or "running" in name:  # frozen prefix, and every BatchNorm statistic
                assert torch.equal(x, y), (k, name)
    changed = [not torch.equal(x, y) for a, b in zip(ours[cut:], theirs[cut:])
               for (_, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items())]
    assert any(changed), "the tail did not train"


def test_the_saved_model_is_the_evaluated_network(partial_run, tiny_data: Path) -> None:
    loaded = load_checkpoint(partial_run.run_dir / "model.pt")
    data = read_split_folders(tiny_data)
    x = torch.from_numpy(np.stack([preprocess(load_rgb(s.path), loaded.spec) for s in data.splits["test"]]))
    with torch.no_grad():
        pred = loaded.model(x).argmax(1).numpy()
    accuracy = float(np.mean(pred == np.array([s.label for s in data.splits["test"]])))
    assert accuracy == pytest.approx(partial_run.metrics["test"]["accuracy"])
    # no training-only module leaked into the saved network
    assert not any(type(m).__name__ == "_DropPath" for m in loaded.model.modules())


def test_resolve_mode() -> None:
    model, _ = build_classifier(LITE0, 3, pretrained=False)
    cpu = torch.device("cpu")
    config, why = resolve_mode(TrainConfig(backbone=LITE0), cpu, model)
    assert config.mode == "partial" and config.epochs == 3 and config.backbone_lr_scale == 0.3
    config, why = resolve_mode(TrainConfig(backbone=LITE0, pretrained=False), cpu, model)
    assert config.mode == "finetune" and "random" in why and config.lr == 3e-4
    odd = Classifier(nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 4, 3)
    config, why = resolve_mode(TrainConfig(backbone=LITE0), cpu, odd)
    assert config.mode == "head" and "cannot be cut" in why
    assert resolve_mode(TrainConfig(backbone=LITE0, mode="head"), cpu, model)[0].mode == "head"


def test_stochastic_depth_is_only_there_while_training() -> None:
    model, _ = build_classifier(LITE0, 3, pretrained=False)
    blocks = backbone_blocks(model.backbone)
    before = [type(getattr(b, "drop_path", None)) for b in blocks]
    with stochastic_depth(blocks, 0.2) as count:
        assert count > 0
        rates = [b.drop_path.rate for b in blocks if type(getattr(b, "drop_path", None)).__name__ == "_DropPath"]
        assert rates == sorted(rates) and rates[-1] == pytest.approx(0.2)
    assert [type(getattr(b, "drop_path", None)) for b in blocks] == before


def test_forced_cut_and_budget_flags(tiny_data: Path, tmp_path: Path) -> None:
    result = fit(_config(tiny_data, tmp_path / "run", mode="partial", cut=15, epochs=1), progress=False, log=quiet)
    assert result.metrics["partial"]["cut"] == 15 and "--cut" in result.metrics["partial"]["reason"]
    with pytest.raises(ConfigError, match="--cut 99: this backbone's blocks that can train start at 1 and end at"):
        fit(_config(tiny_data, tmp_path / "run2", mode="partial", cut=99, epochs=1), progress=False, log=quiet)


def test_measured_costs_cover_every_candidate_and_shrink_with_the_tail() -> None:
    model, _ = build_classifier(LITE0, 3, pretrained=False)
    blocks = backbone_blocks(model.backbone, 32)
    costs, bytes_per_view = _measure(blocks, model.head, 32, torch.device("cpu"), "fp32", quiet, cut=3)
    cuts = sorted(costs.train)
    assert 3 in cuts and cuts[-1] == len(blocks) - 1 and set(costs.prefix) == set(costs.tail_eval) == set(cuts)
    assert set(bytes_per_view) == set(cuts) and all(v > 0 for v in bytes_per_view.values())
    train = [costs.train[c] for c in cuts]
    assert all(t > 0 for t in train) and train == sorted(train, reverse=True)  # a deeper cut trains more
    assert all(costs.prefix[c] > 0 and costs.tail_eval[c] > 0 for c in cuts)


def test_the_chosen_cut_is_timed_itself_and_planned_again() -> None:
    """Scaled costs that are far too low (1 ns a step) pick the deepest cut; timed at that cut, the plan is made
    again with what it really costs, so the cut it ends with is one that was timed."""
    model, _ = build_classifier(LITE0, 3, pretrained=False)
    blocks = backbone_blocks(model.backbone, 32)
    costs, bytes_per_view = _measure(blocks, model.head, 32, torch.device("cpu"), "fp32", quiet)
    low = dataclasses.replace(costs, train={c: 1e-9 for c in costs.train}, tail_eval={c: 1e-9 for c in costs.train})
    args = dict(n_train=40, n_eval=10, budget_s=60.0, epochs=3, bytes_per_view=bytes_per_view, cut=None)
    first = plan_partial(low, **args)
    assert first is not None and first.cut == min(costs.train)  # everything fits: the deepest cut
    plan, timed = _timed_cut_plan(first, low, args, blocks, model.head, 32, torch.device("cpu"), "fp32")
    changed = {c for c in costs.train if timed.train[c] != 1e-9}
    assert first.cut in changed and plan.cut in changed and 1 <= len(changed) <= 3
    assert all(timed.train[c] > 1e-6 and timed.tail_eval[c] > 1e-7 for c in changed)


def _epochs(run_dir: Path) -> list[int]:
    with open(run_dir / "history.csv", newline="") as fh:
        return [int(row["epoch"]) for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_partial_resumes_after_sigkill_with_the_same_plan(tiny_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "clfkit.train", str(tiny_data), "--out", str(run_dir), "--mode", "partial",
               "--backbone", LITE0, "--input-size", "32", "--epochs", "8", "--batch-size", "4", "--workers", "0",
               "--patience", "0", "--device", "cpu", "--precision", "fp32", "--time-budget", "10m"]
    sigkill_when(command, lambda: (run_dir / "history.csv").is_file() and len(_epochs(run_dir)) >= 1,
                 cwd=tmp_path, what="epoch 1", env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = _epochs(run_dir)
    assert 1 <= len(done) < 8
    plan = (run_dir / "plan.json").read_text()
    result = CliRunner().invoke(train_cmd, ["--resume", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert _epochs(run_dir) == list(range(1, 9))  # every epoch exactly once
    assert (run_dir / "plan.json").read_text() == plan
    assert load_checkpoint(run_dir / "model.pt").metrics["mode"] == "partial"


def test_partial_hands_its_warm_start_features_to_the_label_audit(partial_run) -> None:
    audit = partial_run.metrics["label_audit"]  # the frozen tail's features of the warm start: no extra pass
    assert audit["features"] == "the training run's frozen features"
    assert not list((partial_run.run_dir / "cache").glob("audit-features-*.pt"))
    with open(partial_run.run_dir / "report" / "label_issues.csv", newline="") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) == audit["images"] == 24  # the 18 train + 6 val photos
