"""clf-train's options are TrainConfig's fields: the same names, the same defaults, the help texts from one
place, so the CLI and the Python API cannot drift apart."""
from __future__ import annotations

import dataclasses

from click.testing import CliRunner

from clfkit.cli.train import train_cmd
from clfkit.train.config import TrainConfig


def _options() -> dict[str, object]:
    return {p.name: p for p in train_cmd.params}


def test_every_option_field_is_an_option_with_the_same_default():
    options = _options()
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    documented = {name for name, f in fields.items() if "help" in f.metadata}
    assert documented == set(options) - {"data"}  # data is the DATA argument
    for name in documented:
        assert options[name].default == fields[name].default, name
    assert options["data"].default == TrainConfig().data


def test_flags_keep_their_names_and_help_shows_per_mode_defaults():
    flags = {opt for p in train_cmd.params for opt in getattr(p, "opts", [])}
    assert {"--out", "--auto-split", "--backbone", "--pretrained", "--weights", "--mode", "--head", "--epochs",
            "--batch-size", "--lr", "--weight-decay", "--optimizer", "--patience", "--label-smoothing",
            "--class-weights", "--cache-views", "--input-size", "--device", "--precision", "--workers", "--seed",
            "--resume"} <= flags
    text = " ".join(CliRunner().invoke(train_cmd, ["--help"]).output.split())
    assert "Maximum epochs [head: 100, partial: 3, finetune: 15]" in text
    assert "[auto|head|partial|finetune]" in text and "--time-budget" in text and "[default: efficientnet_lite2]" in text


def test_a_bad_value_is_named_by_its_flag(tmp_path):
    result = CliRunner().invoke(train_cmd, [str(tmp_path), "--val", "0.7", "--test", "0.5"])
    assert result.exit_code == 1 and "--val + --test must leave images for training" in result.output
