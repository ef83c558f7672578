"""Metadata round trip with plain onnx and onnxruntime; the reader works without torch."""
from __future__ import annotations

import json

import onnx
import onnxruntime as ort
import pytest
from helpers import run_without_torch
from export_run import SPEC

from clfkit.errors import ModelError
from clfkit.artifacts.onnx_meta import parse_metadata, read_metadata
from clfkit.spec import ModelSpec


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_metadata_round_trip_with_onnx_and_onnxruntime(exported, precision):
    path = exported[0].files[precision]
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    runtime = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert runtime.custom_metadata_map == props
    assert runtime.producer_name == "clfkit"
    assert ModelSpec.from_json(props["clfkit.spec"]) == SPEC
    assert json.loads(props["clfkit.spec"])["schema_version"] == 2
    assert json.loads(props["class_names"]) == list(SPEC.class_names)
    assert props["clfkit.precision"] == precision
    assert props["clfkit.input_format"] == "float32_nchw"
    meta = read_metadata(path)
    assert (meta.spec, meta.input_format, meta.precision) == (SPEC, "float32_nchw", precision)
    assert parse_metadata(runtime.custom_metadata_map) == meta


def test_read_metadata_does_not_import_torch(exported):
    path = exported[1].files["int8"]
    result = run_without_torch(
        "from clfkit.artifacts.onnx_meta import read_metadata\n"
        f"m = read_metadata({str(path)!r})\n"
        "print(m.input_format, m.precision, ','.join(m.spec.class_names))\n"
        "import clfkit.export\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["uint8_nhwc", "int8", "cat,dog,owl"]


def test_reading_a_foreign_file_names_the_problem(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00not onnx at all" * 10)
    with pytest.raises(ModelError, match="not an ONNX model"):
        read_metadata(junk)
    with pytest.raises(ModelError, match="not found"):
        read_metadata(tmp_path / "missing.onnx")
    plain = tmp_path / "plain.onnx"
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    onnx.save(onnx.helper.make_model(graph), str(plain))
    with pytest.raises(ModelError, match="not exported by clf-export"):
        read_metadata(plain)


def test_unknown_input_format_or_precision_is_refused():
    good = {"clfkit.spec": SPEC.to_json()}
    assert parse_metadata(good).input_format == "float32_nchw"
    with pytest.raises(ModelError, match="input_format"):
        parse_metadata({**good, "clfkit.input_format": "bgr_planar"})
    with pytest.raises(ModelError, match="precision"):
        parse_metadata({**good, "clfkit.precision": "int4"})
    with pytest.raises(ModelError, match="invalid"):
        parse_metadata({"clfkit.spec": '{"schema_version": 99}'})
