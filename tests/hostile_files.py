"""Hostile files shared by the *_hostile tests: a checkpoint that runs code when unpickled, ONNX models whose
external data points outside their folder (the one-line check for CLI errors is helpers.one_error_line).

A plain helper module (no fixtures), imported by name.
"""
from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import onnx


class RunsCode:
    """Unpickling this calls ``open(marker, "w")``: the marker file appears if the payload ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def save_code_pickle(path: Path, marker: Path, **fields: Any) -> Path:
    """torch.save ``fields`` plus a payload that creates ``marker`` on load (weights_only=False)."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**fields, "payload": RunsCode(marker)}, path)
    assert not marker.exists()
    return path


def payload_really_runs(marker: Path) -> bool:
    """Guard for the tests: the payload does create the marker when unpickled without restrictions."""
    pickle.loads(pickle.dumps(RunsCode(marker)))
    created = marker.exists()
    marker.unlink(missing_ok=True)
    return created


def with_external_data(model: Path, folder: Path, location: str = "weights.bin") -> Path:
    """``model`` re-saved as ``folder``/model.onnx with every initializer in the file ``location`` there."""
    (folder / location).parent.mkdir(parents=True, exist_ok=True)
    proto = onnx.load(str(model))
    out = folder / "model.onnx"
    onnx.save_model(proto, str(out), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=location, size_threshold=0)
    return out


def relocate_external_data(model: Path, location: str) -> list[str]:
    """Rewrite, in place, where every external tensor of ``model`` says its data lives; returns their names."""
    proto = onnx.load(str(model), load_external_data=False)
    names = []
    for tensor in proto.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
                names.append(tensor.name)
    model.write_bytes(proto.SerializeToString())
    return names


def hostile_external_data(model: Path, tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A copy of ``model`` whose external data is reached in a hostile way; (model path, expected reason).

    The data a hostile location points at is the model's real weights file moved outside its folder, so the
    model would load and run if the location were followed: a refusal is about the path, not broken data.
    """
    folder = tmp_path / "models" / kind
    path = with_external_data(model, folder)
    secret = tmp_path / "secret.bin"
    shutil.move(folder / "weights.bin", secret)
    if kind == "dotdot":
        location, reason = "../../secret.bin", "a path that leads outside the model's folder"
    elif kind == "absolute":
        location, reason = str(secret), "the absolute path"
    elif kind == "etc_passwd":
        location, reason = "/etc/passwd", "the absolute path '/etc/passwd'"
    elif kind == "symlink":
        (folder / "weights.bin").symlink_to(secret)
        location, reason = "weights.bin", "a symbolic link that leads outside the model's folder"
    elif kind == "symlinked_folder":
        (folder / "data").symlink_to(tmp_path, target_is_directory=True)
        location, reason = "data/secret.bin", "a symbolic link that leads outside the model's folder"
    elif kind == "missing":
        location, reason = "weights.bin", "which is missing from"
    else:  # pragma: no cover
        raise AssertionError(kind)
    relocate_external_data(path, location)
    return path, reason


HOSTILE_EXTERNAL_DATA = ["dotdot", "absolute", "etc_passwd", "symlink", "symlinked_folder", "missing"]
