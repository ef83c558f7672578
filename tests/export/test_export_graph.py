"""The exported graph: names, dtypes, dynamic batch, plain onnxruntime at batch 1/3/16/64, embed-preprocess."""
from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from export_run import SPEC

from clfkit.version import __version__
from clfkit.errors import ClfError
from clfkit.export.graph import export_model
from clfkit.vision.preprocess import normalize_batch


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def test_graph_has_the_documented_input_and_output(exported):
    proto = onnx.load(str(exported[0].files["fp32"]))
    (inp,), (out,) = proto.graph.input, proto.graph.output
    assert inp.name == "images" and inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(inp) == ["batch", 3, SPEC.input_size, SPEC.input_size]
    assert out.name == "logits" and out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert _dims(out) == ["batch", len(SPEC.class_names)]
    assert [o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")] == [17]
    assert proto.producer_name == "clfkit" and proto.producer_version == __version__
    onnx.checker.check_model(proto, full_check=True)


@pytest.mark.parametrize("batch", [1, 3, 16, 64])
def test_dynamic_batch_runs_in_plain_onnxruntime_and_matches_pytorch(exported, tiny_run, one_thread, batch):
    session = ort.InferenceSession(str(exported[0].files["fp32"]), providers=["CPUExecutionProvider"])
    pixels = np.random.default_rng(batch).integers(0, 256, (batch, SPEC.input_size, SPEC.input_size, 3), np.uint8)
    x = normalize_batch(pixels, SPEC)
    (logits,) = session.run(["logits"], {"images": x})
    assert logits.shape == (batch, 3) and logits.dtype == np.float32
    with torch.no_grad():
        expected = tiny_run.model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_embed_preprocess_takes_uint8_nhwc_pixels(exported, tiny_run, one_thread):
    path = exported[1].files["fp32"]
    proto = onnx.load(str(path))
    (inp,) = proto.graph.input
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert _dims(inp) == ["batch", SPEC.input_size, SPEC.input_size, 3]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["clfkit.input_format"] == "uint8_nhwc"
    pixels = np.random.default_rng(0).integers(0, 256, (5, SPEC.input_size, SPEC.input_size, 3), np.uint8)
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": pixels})
    with torch.no_grad():
        expected = tiny_run.model(torch.from_numpy(normalize_batch(pixels, SPEC))).numpy()
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_unsupported_opset_is_a_user_error(tiny_run, tmp_path):
    with pytest.raises(ClfError, match="--opset 9"):
        export_model(tiny_run.model, SPEC, tmp_path / "m.onnx", opset=9)
    assert not (tmp_path / "m.onnx").exists()


def test_class_names_metadata_is_a_plain_json_list(exported):
    proto = onnx.load(str(exported[0].files["fp32"]))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["class_names"]) == list(SPEC.class_names)


@pytest.mark.parametrize("opset", [13, 20])
def test_other_opsets_export_and_run(tiny_run, tmp_path, one_thread, opset):
    path = export_model(tiny_run.model, SPEC, tmp_path / "m.onnx", opset=opset)
    assert [o.version for o in onnx.load(str(path)).opset_import if o.domain == ""] == [opset]
    x = normalize_batch(np.zeros((2, SPEC.input_size, SPEC.input_size, 3), np.uint8) + 128, SPEC)
    (logits,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    with torch.no_grad():
        np.testing.assert_allclose(logits, tiny_run.model(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-4)


def test_lite0_style_same_padding_exports_as_plain_convs(tmp_path, one_thread):
    """timm's TF-ported EfficientNets pad at run time; the export has constant pads folded into the Convs."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=3).eval()
    spec = SPEC.replace(input_size=64, resize_size=72)
    proto = onnx.load(str(export_model(model, spec, tmp_path / "lite.onnx")))
    ops = {n.op_type for n in proto.graph.node}
    assert ops <= {"Conv", "Clip", "Add", "GlobalAveragePool", "Flatten", "Gemm", "Reshape"}, ops
    x = np.random.default_rng(0).normal(size=(3, 3, 64, 64)).astype(np.float32)
    (logits,) = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(torch.from_numpy(x)).numpy(), atol=1e-4, rtol=1e-3)
