"""Graph clean-ups: constant folding, Pad folded into Conv, TF "SAME" padding made static; all exact."""
from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from timm.layers.conv2d_same import Conv2dSame
from torch import nn

from clfkit.export.graph import StaticSamePadConv, static_same_padding
from clfkit.export.simplify import fold_constants, fuse_pad_into_conv, simplify


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def _pad_conv_model(pads: list[int], value: float = 0.0) -> onnx.ModelProto:
    """x → Pad(pads from a Constant → Identity chain) → Conv 3x3 stride 2 → y."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Constant", [], ["p0"], value=numpy_helper.from_array(np.array(pads, np.int64))),
        helper.make_node("Identity", ["p0"], ["pads"]),
        helper.make_node("Constant", [], ["v"], value=numpy_helper.from_array(np.array(value, np.float32))),
        helper.make_node("Pad", ["x", "pads", "v"], ["xp"], mode="constant"),
        helper.make_node("Conv", ["xp", "w"], ["y"], strides=[2, 2], pads=[1, 0, 1, 0]),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, 9, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4, None, None])], [weight])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_zero_pad_is_folded_into_the_conv_exactly():
    model = _pad_conv_model([0, 0, 0, 1, 0, 0, 1, 2])
    x = np.random.default_rng(1).normal(size=(2, 3, 9, 8)).astype(np.float32)
    expected = _run(model, x)
    simple = simplify(model)
    onnx.checker.check_model(simple, full_check=True)
    assert [n.op_type for n in simple.graph.node] == ["Conv"]
    conv = simple.graph.node[0]
    assert helper.get_attribute_value(next(a for a in conv.attribute if a.name == "pads")) == [1, 1, 2, 2]
    np.testing.assert_array_equal(_run(simple, x), expected)


@pytest.mark.parametrize("pads, value", [([0, 0, 0, 0, 0, 0, -1, 0], 0.0), ([0, 0, 1, 1, 0, 0, 1, 1], 2.0)])
def test_pads_a_conv_cannot_express_are_kept(pads, value):
    model = fold_constants(_pad_conv_model(pads, value))
    x = np.random.default_rng(1).normal(size=(1, 3, 9, 8)).astype(np.float32)
    expected = _run(model, x)
    assert [n.op_type for n in fuse_pad_into_conv(model).graph.node] == ["Pad", "Conv"]
    np.testing.assert_array_equal(_run(model, x), expected)


def test_graph_inputs_are_never_folded():
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = fold_constants(helper.make_model(graph))
    assert [n.op_type for n in model.graph.node] == ["Relu"]


@pytest.mark.parametrize("size", [32, 33, 48])
@pytest.mark.parametrize("kernel, stride", [(3, 2), (5, 2), (3, 1), (2, 2)])
def test_static_same_padding_matches_timm_conv2d_same(size, kernel, stride):
    torch.manual_seed(0)
    model = nn.Sequential(Conv2dSame(3, 4, kernel, stride=stride), nn.ReLU(), Conv2dSame(4, 2, 3, stride=2)).eval()
    static = static_same_padding(model, size)
    assert static is not model and all(isinstance(static[i], StaticSamePadConv) for i in (0, 2))
    assert isinstance(model[0], Conv2dSame)  # the original is untouched
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(static(x), model(x), rtol=0, atol=0)


def test_models_without_same_padding_are_returned_as_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    assert static_same_padding(model, 32) is model
