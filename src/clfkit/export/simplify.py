"""Small ONNX graph clean-ups after tracing: fold constant subgraphs, fold zero Pads into Convs.  No torch.

The TorchScript exporter writes each ``F.pad`` as a Pad whose ``pads`` come from a little constant
subgraph (ConstantOfShape → Concat → Reshape → Slice with step -1 → Transpose → Reshape) that its own constant
folding cannot evaluate.  Left alone, every runtime re-derives those constants, and a separate Pad before each
stride-2 conv of the TF-ported EfficientNets costs a copy of the activation (and, in an int8 graph, an extra
quantize/dequantize pair).  ONNX's Conv takes asymmetric ``pads`` directly, so the Pad can go.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["fold_constants", "fuse_pad_into_conv", "drop_unused_opsets", "simplify"]

_MAX_FOLDED_ELEMENTS = 1 << 16  # constant subgraphs here are shape arithmetic: tiny tensors


def _evaluate(node: onnx.NodeProto, inputs: list[np.ndarray], opset: list[onnx.OperatorSetIdProto]) -> list:
    from onnx.reference import ReferenceEvaluator

    names = [f"in{i}" for i in range(len(node.input))]
    clone = helper.make_node(node.op_type, [n if node.input[i] else "" for i, n in enumerate(names)],
                             [f"out{i}" for i in range(len(node.output))], domain=node.domain)
    clone.attribute.extend(node.attribute)
    feeds = {n: v for n, v, orig in zip(names, inputs, node.input) if orig}
    graph = helper.make_graph([clone], "fold", [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None)
                                                for n in feeds], [helper.make_value_info(o, onnx.TypeProto())
                                                                  for o in clone.output])
    model = helper.make_model(graph, opset_imports=list(opset))
    return ReferenceEvaluator(model).run(None, feeds)


def fold_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace Constant nodes and standard-domain nodes whose inputs are all constant by initializers."""
    graph = model.graph
    known = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    keep, new_inits = [], []
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            value = _evaluate(node, [], model.opset_import)[0]
        elif (node.domain in ("", "ai.onnx") and node.input and node.op_type not in ("RandomNormal", "RandomUniform")
              and all((not i) or (i in known and i not in graph_inputs) for i in node.input)):
            try:
                values = _evaluate(node, [known.get(i) for i in node.input], model.opset_import)
            except Exception:  # noqa: BLE001 - an op the reference evaluator lacks stays in the graph
                keep.append(node)
                continue
            if len(values) != 1 or np.asarray(values[0]).size > _MAX_FOLDED_ELEMENTS:
                keep.append(node)
                continue
            value = values[0]
        else:
            keep.append(node)
            continue
        value = np.asarray(value)
        known[node.output[0]] = value
        new_inits.append(numpy_helper.from_array(value, node.output[0]))
    del graph.node[:]
    graph.node.extend(keep)
    graph.initializer.extend(new_inits)
    return _drop_unused(model)


def _drop_unused(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    used = {i for n in graph.node for i in n.input} | {o.name for o in graph.output}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    values = [v for v in graph.value_info if v.name in used]
    del graph.value_info[:]
    graph.value_info.extend(values)
    return model


def fuse_pad_into_conv(model: onnx.ModelProto) -> onnx.ModelProto:
    """Fold a constant zero Pad over H/W into the single Conv that consumes it (ONNX pads are asymmetric)."""
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    dropped = []
    for pad in graph.node:
        if pad.op_type != "Pad" or len(pad.input) < 2 or pad.input[1] not in inits or pad.output[0] in outputs:
            continue
        mode = next((a.s for a in pad.attribute if a.name == "mode"), b"constant")
        if mode != b"constant" or (len(pad.input) > 3 and pad.input[3]):
            continue
        if len(pad.input) > 2 and pad.input[2]:
            if pad.input[2] not in inits or numpy_helper.to_array(inits[pad.input[2]]).item() != 0:
                continue
        pads = numpy_helper.to_array(inits[pad.input[1]]).tolist()  # [n, c, h, w] begins then ends
        users = consumers.get(pad.output[0], [])
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            continue
        if len(users) != 1 or users[0].op_type != "Conv" or users[0].input[0] != pad.output[0]:
            continue
        conv = users[0]
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for a in conv.attribute):
            continue
        old = next((a for a in conv.attribute if a.name == "pads"), None)
        base = list(old.ints) if old is not None else [0, 0, 0, 0]  # [h_begin, w_begin, h_end, w_end]
        if old is not None:
            conv.attribute.remove(old)
        conv.attribute.append(helper.make_attribute(
            "pads", [base[0] + pads[2], base[1] + pads[3], base[2] + pads[6], base[3] + pads[7]]))
        conv.input[0] = pad.input[0]
        dropped.append(pad)
    for node in dropped:
        graph.node.remove(node)
    return _drop_unused(model)


def drop_unused_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove opset imports no node uses (onnxruntime's optimizer declares a dozen of its own domains), so
    runtimes that refuse unknown domains still load the file."""
    used = {n.domain for n in model.graph.node} | {"", "ai.onnx"}
    keep = [o for o in model.opset_import if o.domain in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    """fold_constants then fuse_pad_into_conv, in place; returns ``model``."""
    return fuse_pad_into_conv(fold_constants(model))
