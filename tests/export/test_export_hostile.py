"""clf-export on model.pt files that torch.load(weights_only=True) accepts but that are not what clf-train
writes: damaged fields, hand-made structures, a spec from the future.  Each is one line, exit 1, no ONNX file.

Code-running pickles, foreign dicts and missing fields are in tests/cli/test_cli_export.py."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from click.testing import CliRunner
from helpers import one_error_line

from clfkit.cli.export import export_cmd
from clfkit.artifacts.checkpoint import read_checkpoint

Edit = Callable[[dict[str, Any]], None]


def _set(*keys: str, value: Any) -> Edit:
    def edit(obj: dict[str, Any]) -> None:
        target = obj
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value
    return edit


def _drop(*keys: str) -> Edit:
    def edit(obj: dict[str, Any]) -> None:
        target = obj
        for key in keys[:-1]:
            target = target[key]
        del target[keys[-1]]
    return edit


DAMAGED = {
    "spec is a list": (_set("spec", value=["cat", "dog", "owl"]), "field `spec` is a list, not a mapping"),
    "arch is text": (_set("arch", value="timm:test_efficientnet"), "field `arch` is a str, not a mapping"),
    "config is a list": (_set("config", value=[1, 2]), "field `config` is a list, not a mapping"),
    "metrics is a number": (_set("metrics", value=0.9), "field `metrics` is a float, not a mapping"),
    "state_dict is a list": (_set("state_dict", value=[torch.zeros(1)]), "field `state_dict` is a list"),
    "weights are not tensors": (_set("state_dict", "head.weight", value="0.5"), "not named tensors: ['head.weight']"),
    "no backbone": (_drop("arch", "backbone"), "`arch` lacks a valid backbone"),
    "class count as text": (_set("arch", "num_classes", value="3"), "`arch` lacks a valid num_classes"),
    "unknown backbone": (_set("arch", "backbone", value="os.system"), "cannot rebuild the checkpoint's model"),
    "unknown head": (_set("arch", "head", value="mlp9000"), "cannot rebuild the checkpoint's model"),
    "spec from the future": (_set("spec", "schema_version", value=3), "upgrade clfkit"),
    "class names as text": (_set("spec", "class_names", value="cat"), "must be a list of names"),
}


@pytest.mark.parametrize("case", list(DAMAGED))
def test_damaged_checkpoint_is_one_line(tiny_run, tmp_path: Path, case: str) -> None:
    edit, expected = DAMAGED[case]
    obj = read_checkpoint(tiny_run.checkpoint)
    edit(obj)
    path = tmp_path / "model.pt"
    torch.save(obj, path)
    result = CliRunner().invoke(export_cmd, [str(path), str(tmp_path / "model.onnx")])
    line = one_error_line(result)
    assert line.startswith(f"Error: {path}: ") and expected in line
    assert not (tmp_path / "model.onnx").exists()
