"""--runtime auto / --precision auto: what runs a model, and only because it was verified (clfkit.runtime.select)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from clfkit.artifacts.verify_record import read_checks, verify_json_path
from clfkit.devices import machine_id
from clfkit.errors import ConfigError
from clfkit.io import file_sha256
from clfkit.runtime import select
from clfkit.runtime.engine import Engine
from clfkit.runtime.select import choose


@pytest.fixture
def export_dir(exported, tmp_path) -> Path:
    """model.onnx and model.int8.onnx of the tiny export, in a folder of their own (no record yet)."""
    result = exported[0]
    shutil.copy(result.files["fp32"], tmp_path / "model.onnx")
    shutil.copy(result.files["int8"], tmp_path / "model.int8.onnx")
    return tmp_path


def write_record(folder: Path, *entries: dict, machine: str | None = None) -> None:
    """A verify.json like clf-export's, with the given (file, runtime, precision, speed, agreement) entries."""
    reports = []
    for e in entries:
        path = folder / e["file"]
        reports.append({"onnx_file": str(path), "sha256": e.get("sha256") or file_sha256(path),
                        "runtime": e["runtime"], "precision": e["precision"], "passed": e.get("passed", True),
                        "agreement": e.get("agreement", 1.0), "max_abs_prob": 0.001,
                        "torch_accuracy": e.get("torch_accuracy"), "onnx_accuracy": e.get("onnx_accuracy"),
                        "images_per_s": e["speed"], "machine": machine or machine_id()})
    verify_json_path(folder / "model.onnx").write_text(json.dumps({"reports": reports}), encoding="utf-8")


def fp32(runtime: str, speed: float, **kw) -> dict:
    return {"file": "model.onnx", "runtime": runtime, "precision": "fp32", "speed": speed, **kw}


def int8(runtime: str, speed: float, **kw) -> dict:
    return {"file": "model.int8.onnx", "runtime": runtime, "precision": "int8", "speed": speed, **kw}


def test_the_fastest_verified_run_on_this_machine_is_chosen(export_dir):
    write_record(export_dir, fp32("onnxruntime", 100), fp32("openvino", 90), int8("openvino", 300),
                 int8("onnxruntime", 200))
    choice = choose(export_dir / "model.onnx", device="cpu")
    assert (choice.path.name, choice.runtime, choice.precision) == ("model.int8.onnx", "openvino", "int8")
    assert "verified on this machine" in choice.reason and "300.0 img/s" in choice.reason
    engine = Engine.from_onnx(export_dir / "model.onnx", device="cpu")
    assert engine.path.name == "model.int8.onnx" and engine.runtime == "openvino" and engine.precision_run == "int8"
    assert "int8" in engine.provider and "verified" in engine.describe_choice()


def test_an_explicit_runtime_or_precision_narrows_the_choice(export_dir):
    write_record(export_dir, fp32("onnxruntime", 100), fp32("openvino", 90), int8("openvino", 300),
                 int8("onnxruntime", 200))
    c = choose(export_dir / "model.onnx", runtime="onnxruntime", device="cpu")
    assert (c.path.name, c.runtime) == ("model.int8.onnx", "onnxruntime")
    c = choose(export_dir / "model.onnx", precision="fp32", device="cpu")
    assert (c.path.name, c.runtime, c.precision) == ("model.onnx", "onnxruntime", "fp32")
    # a variant given by name is run as given: auto never swaps the file the user named for another
    c = choose(export_dir / "model.int8.onnx", device="cpu")
    assert (c.path.name, c.runtime) == ("model.int8.onnx", "openvino")


@pytest.mark.parametrize("why, entry", [
    ("agreement below 99 %", int8("openvino", 300, agreement=0.97)),
    ("failed verification", int8("openvino", 300, passed=False)),
    ("lost accuracy", int8("openvino", 300, torch_accuracy=0.95, onnx_accuracy=0.94)),
    ("not the verified file", int8("openvino", 300, sha256="0" * 64)),
])
def test_an_unverified_variant_is_never_chosen(export_dir, why, entry):
    write_record(export_dir, fp32("onnxruntime", 100), entry)
    choice = choose(export_dir / "model.onnx", device="cpu")
    assert (choice.path.name, choice.runtime, choice.precision) == ("model.onnx", "onnxruntime", "fp32"), why


def test_a_record_from_another_machine_is_not_used(export_dir):
    write_record(export_dir, int8("openvino", 300), machine="Some Other CPU | avx2 | 64 cores")
    choice = choose(export_dir / "model.onnx", device="cpu")
    assert (choice.path.name, choice.runtime, choice.precision) == ("model.onnx", "onnxruntime", "auto")
    assert "no verification of model.onnx measured on this machine" in choice.reason


@pytest.mark.parametrize("cpu", ["Intel(R) Xeon(R) Platinum 8480+", "AMD EPYC"])
def test_without_a_record_onnxruntime_runs_whatever_the_cpu(export_dir, monkeypatch, cpu):
    """Which CPU runtime is faster is measured (by clf-export), never guessed from the vendor."""
    monkeypatch.setattr(select, "cpu_model", lambda: cpu)
    choice = choose(export_dir / "model.onnx", device="cpu")
    assert (choice.path.name, choice.runtime, choice.precision) == ("model.onnx", "onnxruntime", "auto")
    engine = Engine.from_onnx(export_dir / "model.onnx", device="cpu")
    assert engine.runtime == "onnxruntime" and engine.precision_run == "fp32"


def test_cuda_is_onnxruntimes(export_dir):
    assert choose(export_dir / "model.onnx", device="cuda").runtime == "onnxruntime"
    with pytest.raises(ConfigError, match="--runtime openvino runs on the CPU"):
        choose(export_dir / "model.onnx", runtime="openvino", device="cuda")


def test_precision_int8_runs_the_int8_file_beside_the_model(export_dir):
    c = choose(export_dir / "model.onnx", precision="int8", device="cpu")
    assert c.path.name == "model.int8.onnx" and c.precision == "int8"
    (export_dir / "model.int8.onnx").unlink()
    with pytest.raises(ConfigError, match="--precision int8: model.onnx is fp32 and there is no model.int8.onnx"):
        choose(export_dir / "model.onnx", precision="int8", device="cpu")


def test_a_precision_this_cpu_cannot_compute_in_is_an_error(export_dir, monkeypatch):
    from clfkit.devices import has_native_bf16

    if has_native_bf16():
        engine = Engine.from_onnx(export_dir / "model.onnx", device="cpu", precision="bf16")
        assert engine.runtime == "openvino" and engine.precision_run == "bf16"
    else:
        with pytest.raises(ConfigError, match="--precision bf16: OpenVINO computes in fp32 on this CPU"):
            Engine.from_onnx(export_dir / "model.onnx", device="cpu", precision="bf16")
    with pytest.raises(ConfigError, match="--precision bf16: onnxruntime runs model.onnx in the precision"):
        Engine.from_onnx(export_dir / "model.onnx", device="cpu", runtime="onnxruntime", precision="bf16")


def test_the_export_records_what_auto_reads(exported):
    """clf-export verified every file on onnxruntime and OpenVINO, with speeds and this machine's id."""
    result = exported[0]
    checks = read_checks(result.files["fp32"])
    got = {(c.file.name, c.runtime) for c in checks}
    assert {("model.onnx", "onnxruntime"), ("model.onnx", "openvino"), ("model.int8.onnx", "onnxruntime"),
            ("model.int8.onnx", "openvino")} <= got
    assert all(c.machine == machine_id() and c.images_per_s and c.images_per_s > 0 for c in checks)
    assert all(c.sha256 == file_sha256(c.file) for c in checks)
    assert read_checks(result.files["int8"]) == checks  # a variant finds the record of the file it came from
