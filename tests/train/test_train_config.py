"""TrainConfig: every bad option fails at construction with an error that names its flag (and the fix)."""
from __future__ import annotations

from pathlib import Path

import pytest

from clfkit.errors import ConfigError
from clfkit.train.config import _MODE_DEFAULTS, MODES, TrainConfig


@pytest.mark.parametrize(
    "options, flag",
    [
        ({"epochs": 0}, "--epochs"),
        ({"batch_size": 0}, "--batch-size"),
        ({"lr": -1.0}, "--lr"),
        ({"lr": float("nan")}, "--lr"),
        ({"weight_decay": -0.1}, "--weight-decay"),
        ({"patience": -1}, "--patience"),
        ({"label_smoothing": 1.0}, "--label-smoothing"),
        ({"label_smoothing": -0.1}, "--label-smoothing"),
        ({"cache_views": 0}, "--cache-views"),
        ({"input_size": 8}, "--input-size"),
        ({"workers": -1}, "--workers"),
        ({"warmup_epochs": -1}, "--warmup-epochs"),
        ({"backbone_lr_scale": 0.0}, "--backbone-lr-scale"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "--val + --test"),
        ({"optimizer": "lion"}, "--optimizer"),
        ({"device": "tpu"}, "--device"),
        ({"precision": "int8"}, "--precision"),
        ({"class_weights": "balanced"}, "--class-weights"),
        ({"head": "transformer"}, "--head"),
    ],
)
def test_bad_value_names_its_flag(options: dict, flag: str) -> None:
    with pytest.raises(ConfigError) as info:
        TrainConfig(**options)
    assert flag in str(info.value)


def test_mode_typo_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError, match=r"--mode .*Did you mean 'finetune'\?"):
        TrainConfig(mode="fintune")


def test_weights_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--weights .*missing.pth: file not found"):
        TrainConfig(weights=tmp_path / "missing.pth")


def test_weights_and_no_pretrained_conflict(tmp_path: Path) -> None:
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    with pytest.raises(ConfigError, match="Can't combine `--weights` with `--no-pretrained`"):
        TrainConfig(mode="finetune", weights=weights, pretrained=False)


def test_head_mode_needs_pretrained_backbone() -> None:
    with pytest.raises(ConfigError, match="--mode head.*--no-pretrained"):
        TrainConfig(mode="head", pretrained=False)
    assert TrainConfig(mode="finetune", pretrained=False).pretrained is False


@pytest.mark.parametrize("mode", [m for m in MODES if m != "auto"])
def test_per_mode_defaults_fill_unset_options(mode: str) -> None:
    config = TrainConfig(mode=mode, pretrained=True)
    for key, value in _MODE_DEFAULTS[mode].items():
        assert getattr(config, key) == value, key
    assert config.epochs >= 1 and config.lr > 0 and config.batch_size >= 1
    # An explicit value always wins over the mode's default.
    explicit = TrainConfig(mode=mode, epochs=3, lr=0.5, batch_size=7, weight_decay=0.0)
    assert (explicit.epochs, explicit.lr, explicit.batch_size, explicit.weight_decay) == (3, 0.5, 7, 0.0)


def test_modes_have_their_own_defaults() -> None:
    """Head mode trains a linear layer on cached features; finetune the whole network: a larger lr and more
    epochs for the head."""
    head, finetune = TrainConfig(mode="head"), TrainConfig(mode="finetune")
    assert head.lr > finetune.lr and head.epochs > finetune.epochs


def test_paths_are_paths() -> None:
    config = TrainConfig(data="some/data", out="runs/x", resume="runs/y")  # type: ignore[arg-type]
    assert config.data == Path("some/data") and config.out == Path("runs/x") and config.resume == Path("runs/y")


def test_dict_and_json_round_trip(tmp_path: Path) -> None:
    import json

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"x")
    config = TrainConfig(data=tmp_path / "data", out=tmp_path / "run", mode="finetune", backbone="timm:resnet10t",
                         weights=weights, epochs=4, input_size=64, head="mlp", seed=7)
    data = config.to_dict()
    assert data["data"] == str(tmp_path / "data") and data["weights"] == str(weights)
    assert TrainConfig.from_dict(data) == config
    assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_from_dict_refuses_unknown_keys() -> None:
    data = {**TrainConfig().to_dict(), "learning_rate": 0.1, "epoch": 3}
    with pytest.raises(ConfigError, match="unknown training options in config: epoch, learning_rate"):
        TrainConfig.from_dict(data)


def test_auto_leaves_defaults_to_the_resolved_mode_and_budget_parses() -> None:
    config = TrainConfig()
    assert config.mode == "auto" and config.epochs is None and config.lr is None
    partial = config.with_mode("partial")
    assert partial.epochs == 3 and partial.budget_seconds() == 300
    assert TrainConfig(mode="partial", time_budget="2m").budget_seconds() == 120
    assert TrainConfig(mode="finetune", time_budget="1.5h").budget_seconds() == 5400
    assert TrainConfig(mode="finetune").budget_seconds() == float("inf")
    with pytest.raises(ConfigError, match="--time-budget"):
        TrainConfig(time_budget="soon")
    with pytest.raises(ConfigError, match="--cut is for --mode partial"):
        TrainConfig(mode="head", cut=5)
    with pytest.raises(ConfigError, match="--mode partial.*--no-pretrained"):
        TrainConfig(mode="partial", pretrained=False)
