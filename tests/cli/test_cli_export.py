"""clf-export through click: the happy path, bad checkpoints, bad options, unwritable output, atomicity."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from export_run import SPEC, make_model
from helpers import one_error_line

from clfkit.artifacts import onnx_meta as metadata
from clfkit.cli.export import export_cmd
from clfkit.artifacts.checkpoint import save_checkpoint


def run(*args: object):
    return CliRunner().invoke(export_cmd, [str(a) for a in args])


def test_export_writes_verified_onnx_into_a_new_folder(tiny_run, tmp_path, one_thread):
    out = tmp_path / "new" / "deeper" / "model.onnx"
    result = run(tiny_run.checkpoint, out, "--verify", tiny_run.data / "val", "--atol", "1e-4")
    assert result.exit_code == 0, result.output
    assert out.is_file() and oct(out.stat().st_mode & 0o044) == oct(0o044 & ~_umask())
    assert "PASS" in result.output and f"wrote {out} (fp32)" in result.output
    report = json.loads((out.parent / "model.verify.json").read_text())
    assert report["passed"] is True and report["images"]["count"] == 24
    assert [r["batch_size"] for r in report["reports"][0]["rows"]] == [1, 3, 16]
    # by default the int8 file too, calibrated on the run's train split and verified like the fp32 one
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.int8.onnx", "model.onnx", "model.verify.json"]
    assert f"wrote {out.with_name('model.int8.onnx')} (int8)" in result.output
    assert "clf-infer on this CPU will run: " in result.output


def test_no_int8_writes_only_the_fp32_file(tiny_run, tmp_path, one_thread):
    out = tmp_path / "model.onnx"
    result = run(tiny_run.checkpoint, out, "--no-int8")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.verify.json"]
    result = run(tiny_run.checkpoint, out, "--no-int8", "--calibration", tiny_run.data / "train")
    assert result.exit_code != 0 and "--no-int8 is set" in result.output


def test_without_calibration_photos_the_default_export_skips_int8(tiny_run, tmp_path, one_thread):
    import shutil

    run_dir = tmp_path / "moved"
    shutil.copytree(tiny_run.checkpoint.parent, run_dir)  # the checkpoint without its data folder beside it
    data = tiny_run.data
    hidden = data.with_name(data.name + "-hidden")
    data.rename(hidden)
    try:
        result = run(run_dir / tiny_run.checkpoint.name, tmp_path / "out" / "model.onnx")
    finally:
        hidden.rename(data)
    assert result.exit_code == 0, result.output
    assert "no int8 file: no calibration photos" in result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.onnx", "model.verify.json"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_int8_with_calibration_folder(tiny_run, tmp_path, one_thread):
    out = tmp_path / "m.onnx"
    result = run(tiny_run.checkpoint, out, "--int8", "--calibration", tiny_run.data / "train")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.int8.onnx").is_file()
    assert "m.int8.onnx on onnxruntime (int8, float32_nchw input" in result.output
    assert "m.int8.onnx on openvino (int8, float32_nchw input" in result.output


def test_without_the_data_split_generated_images_are_used(tmp_path, one_thread):
    checkpoint = tmp_path / "run" / "model.pt"
    save_checkpoint(checkpoint, make_model(), SPEC, config={"data": "no/such/folder"})
    result = run(checkpoint, tmp_path / "m.onnx")
    assert result.exit_code == 0, result.output
    assert "32 generated images" in result.output
    result = run(checkpoint, tmp_path / "m.onnx", "--int8")
    assert "pass --calibration DIR" in one_error_line(result)


class MakesMarker:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("case", ["random_bytes", "foreign_dict", "code_on_load", "folder", "missing", "no_spec"])
def test_bad_checkpoints_are_refused_with_one_line(tmp_path, case):
    path = tmp_path / "model.pt"
    marker = tmp_path / "pwned"
    if case == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif case == "foreign_dict":
        torch.save({"state_dict": {"w": torch.zeros(2)}, "spec": SPEC.to_dict()}, path)
    elif case == "code_on_load":
        torch.save({"format": "clfkit.checkpoint", "format_version": 1, "spec": SPEC.to_dict(), "arch": {},
                    "state_dict": {}, "payload": MakesMarker(marker)}, path)
    elif case == "folder":
        path.mkdir()
    elif case == "no_spec":
        torch.save({"format": "clfkit.checkpoint", "format_version": 1, "arch": {}, "state_dict": {}}, path)
    line = one_error_line(run(path, tmp_path / "out.onnx"))
    expected = {"random_bytes": "not a PyTorch checkpoint", "foreign_dict": "no clfkit format marker",
                "code_on_load": "refused to load", "folder": "is a folder", "missing": "not found",
                "no_spec": "has no `spec`"}[case]
    assert expected in line
    assert not marker.exists()
    assert not (tmp_path / "out.onnx").exists()


def test_pickle_marker_really_would_run_code(tmp_path):
    """Guard for the test above: without weights_only the payload does create the marker."""
    path, marker = tmp_path / "evil.pt", tmp_path / "pwned"
    torch.save({"payload": MakesMarker(marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_head_size_must_match_the_class_names(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_model(), SPEC)
    obj = torch.load(path, weights_only=True)
    obj["spec"] = SPEC.replace(class_names=["a", "b", "c", "d"]).to_dict()
    obj["arch"]["num_classes"] = 4
    torch.save(obj, path)
    line = one_error_line(run(path, tmp_path / "out.onnx"))
    assert "4" in line and "3" in line and "class" in line


@pytest.mark.parametrize("args, expected", [
    (["--no-int8", "--calibration", "."], "--no-int8 is set"),
    (["--atol", "0"], "--atol must be a positive number"),
    (["--opset", "7"], "--opset 7 is not supported"),
    (["--verify", "no/such/dir"], "--verify no/such/dir: folder not found"),
])
def test_bad_options_name_the_flag(tiny_run, tmp_path, args, expected):
    assert expected in one_error_line(run(tiny_run.checkpoint, tmp_path / "m.onnx", *args))


def test_out_must_be_an_onnx_file_name(tiny_run, tmp_path):
    assert "must end in .onnx" in one_error_line(run(tiny_run.checkpoint, tmp_path / "model"))
    (tmp_path / "dir.onnx").mkdir()
    assert "is a folder" in one_error_line(run(tiny_run.checkpoint, tmp_path / "dir.onnx"))


def test_unwritable_output_is_one_clear_line(tiny_run, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    line = one_error_line(run(tiny_run.checkpoint, blocker / "model.onnx"))
    assert "cannot write there" in line


@pytest.mark.parametrize("failure", [RuntimeError, KeyboardInterrupt])
def test_interrupted_export_leaves_out_unchanged_and_no_temp_files(tiny_run, tmp_path, monkeypatch, failure,
                                                                     one_thread):
    out = tmp_path / "model.onnx"
    out.write_bytes(b"previous model")

    def half_then_fail(proto: onnx.ModelProto, path: str, *args, **kwargs) -> None:
        Path(path).write_bytes(proto.SerializeToString()[:1000])  # half a file in the temp path
        raise failure("disk full")

    monkeypatch.setattr(metadata.onnx, "save_model", half_then_fail)
    result = run(tiny_run.checkpoint, out)
    assert result.exit_code != 0
    assert out.read_bytes() == b"previous model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    out.unlink()
    result = run(tiny_run.checkpoint, out)
    assert result.exit_code != 0 and list(tmp_path.iterdir()) == []


def test_help_lists_every_option():
    result = CliRunner().invoke(export_cmd, ["--help"])
    assert result.exit_code == 0
    for option in ("--opset", "--verify", "--atol", "--int8", "--calibration", "--fp16", "--embed-preprocess"):
        assert option in result.output


def test_a_real_checkpoint_loads_with_weights_only(tiny_run):
    """What the refusal above relies on: clf-train's model.pt needs no code to unpickle."""
    obj = torch.load(tiny_run.checkpoint, weights_only=True)
    assert obj["format"] == "clfkit.checkpoint"


def test_a_default_int8_file_that_fails_verification_is_not_kept(tiny_run, tmp_path, one_thread, monkeypatch):
    """The int8 file nobody asked for must not fail the export, nor stay on disk to be deployed; asked for with
    --int8, its failure fails the command."""
    from clfkit.export import verify as verify_module

    monkeypatch.setitem(verify_module.MIN_AGREEMENT, "int8", 1.01)  # no int8 file can pass
    out = tmp_path / "model.onnx"
    result = run(tiny_run.checkpoint, out)
    assert result.exit_code == 0, result.output
    assert "model.int8.onnx failed verification on onnxruntime" in result.output and "not kept" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.verify.json"]
    record = json.loads((tmp_path / "model.verify.json").read_text())
    assert record["passed"] is True and "model.int8.onnx" in record["dropped"]
    choice = result.output.splitlines()[-1]  # what auto runs: the kept fp32 file, on whichever runtime was faster
    assert "clf-infer on this CPU will run:" in choice and " on model.onnx" in choice and "int8" not in choice
    result = run(tiny_run.checkpoint, out, "--int8")
    assert result.exit_code != 0 and "verification FAILED for model.int8.onnx" in result.output
