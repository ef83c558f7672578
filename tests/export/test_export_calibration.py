"""clf-export and the spec's temperature: the ONNX metadata carries the checkpoint's spec as it is (a calibrated
one with its temperature; a version-1 model.pt from before calibration stays version 1, so the file still says
it is uncalibrated), and verification, which compares raw logits, passes either way."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import version1_spec

from clfkit.artifacts.checkpoint import read_checkpoint
from clfkit.artifacts.onnx_meta import META_SPEC, read_metadata, read_props
from clfkit.export.api import export_checkpoint
from clfkit.spec import ModelSpec

SPECS = {"calibrated": lambda spec: spec.with_temperature(2.0), "version 1": version1_spec}


@pytest.mark.parametrize("kind", list(SPECS))
def test_the_exported_file_carries_the_checkpoints_temperature(tiny_run, tmp_path: Path, kind: str) -> None:
    obj = read_checkpoint(tiny_run.checkpoint)
    spec = SPECS[kind](ModelSpec.from_dict(obj["spec"]))
    obj["spec"] = spec.to_dict()
    checkpoint = tmp_path / "model.pt"
    torch.save(obj, checkpoint)
    result = export_checkpoint(checkpoint, tmp_path / "model.onnx", int8=False, log=lambda _m: None)
    assert result.passed  # raw logits against PyTorch: the temperature does not enter verification
    meta = read_metadata(tmp_path / "model.onnx")
    assert meta.spec == spec and meta.spec.temperature == spec.temperature
    stored = json.loads(read_props(tmp_path / "model.onnx")[META_SPEC])
    if kind == "version 1":
        assert stored["schema_version"] == 1 and "temperature" not in stored and not meta.spec.calibrated
    else:
        assert stored["schema_version"] == 2 and stored["temperature"] == 2.0 and meta.spec.calibrated
