"""Hostile ONNX files: external data outside the model's folder, broken clfkit metadata, files that are not
ONNX at all.  Each is refused with one line naming the model, the reason and the fix."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from hostile_files import (HOSTILE_EXTERNAL_DATA, hostile_external_data, relocate_external_data,
                           with_external_data)
from helpers import draw_image, one_error_line

from clfkit.errors import ModelError
from clfkit.runtime import Engine
from clfkit.cli.infer import infer_cmd


def _invoke(*args: object):
    return CliRunner().invoke(infer_cmd, [str(a) for a in args])


def _probe(engine: Engine) -> np.ndarray:
    pixels = np.stack([np.asarray(draw_image(s, (32, 32))) for s in range(3)])  # uint8 (3, 32, 32, 3)
    return engine.run(engine.prepare(pixels))


# --- external data --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("location", ["weights.bin", "data/weights.bin"])
def test_a_model_with_external_data_in_its_own_folder_loads_and_agrees(tiny, tmp_path, location):
    path = with_external_data(tiny.onnx, tmp_path / "model", location)
    assert (path.parent / location).stat().st_size > 1000  # the weights really live outside model.onnx
    engine = Engine.from_onnx(path, device="cpu")
    assert engine.spec == tiny.spec
    np.testing.assert_allclose(_probe(engine), _probe(Engine.from_onnx(tiny.onnx, device="cpu")), atol=1e-6)


@pytest.mark.parametrize("kind", HOSTILE_EXTERNAL_DATA)
def test_external_data_outside_the_models_folder_is_refused(tiny, tmp_path, kind):
    path, reason = hostile_external_data(tiny.onnx, tmp_path, kind)
    with pytest.raises(ModelError) as info:
        Engine.from_onnx(path, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert reason in message
    if kind != "missing":
        assert "refused" in message and "may only read data files kept in its own folder" in message
    else:
        assert "copy the model's data files next to it" in message


def test_an_in_folder_link_to_an_in_folder_file_is_fine(tiny, tmp_path):
    path = with_external_data(tiny.onnx, tmp_path / "model", "real.bin")
    (path.parent / "alias.bin").symlink_to("real.bin")
    relocate_external_data(path, "alias.bin")
    assert Engine.from_onnx(path, device="cpu").spec == tiny.spec


def test_external_data_in_a_constant_node_is_checked_too(tiny, tmp_path):
    """Not only initializers: a Constant node's tensor can name an external file as well."""
    path = with_external_data(tiny.onnx, tmp_path / "model")
    proto = onnx.load(str(path), load_external_data=False)
    weight = proto.graph.initializer.pop(0)
    proto.graph.node.insert(0, onnx.helper.make_node("Constant", [], [weight.name], value=weight))
    for entry in proto.graph.node[0].attribute[0].t.external_data:
        if entry.key == "location":
            entry.value = "../outside.bin"
    path.write_bytes(proto.SerializeToString())
    with pytest.raises(ModelError, match=rf"tensor '{weight.name}' reads its data from '../outside.bin'"):
        Engine.from_onnx(path, device="cpu")


def test_clf_infer_refuses_external_data_outside_in_one_line(tiny, tmp_path):
    path, _ = hostile_external_data(tiny.onnx, tmp_path, "dotdot")
    (tmp_path / "img").mkdir()
    draw_image(1).save(tmp_path / "img" / "a.jpg")
    line = one_error_line(_invoke("-m", path, tmp_path / "img", "--device", "cpu"))
    assert str(path) in line and "outside the model's folder" in line


# --- clfkit metadata --------------------------------------------------------------------------------------------
def _with_metadata(tiny, tmp_path: Path, **changes: str | None) -> Path:
    """The tiny model with metadata keys replaced (None deletes a key)."""
    proto = onnx.load(str(tiny.onnx))
    props = {p.key: p.value for p in proto.metadata_props}
    for key, value in changes.items():
        key = key.replace("__", ".")
        if value is None:
            props.pop(key, None)
        else:
            props[key] = value
    del proto.metadata_props[:]
    for key, value in props.items():
        proto.metadata_props.add(key=key, value=value)
    path = tmp_path / "edited.onnx"
    onnx.save(proto, str(path))
    return path


def _spec_json(tiny, **changes) -> str:
    return json.dumps({**tiny.spec.to_dict(), **changes})


BROKEN_METADATA = {
    "no clfkit keys": (dict(clfkit__spec=None, class_names=None, clfkit__input_format=None,
                            clfkit__precision=None, clfkit__version=None),
                       ["not exported by clf-export", "--spec spec.json"]),
    "spec is not JSON": (dict(clfkit__spec="{'class_names': ['cat']"), ["not valid JSON", "--spec spec.json"]),
    "spec is a list": (dict(clfkit__spec='["cat", "dog", "owl"]'), ["must be a JSON object", "clf-export"]),
    "newer schema": ("schema_version=3", ["schema version 3 is not supported", "upgrade clfkit"]),
    "class names a string": ("class_names='cat'", ["`class_names` must be a list of names"]),
    "class names numbers": ("class_names=[1, 2, 3]", ["non-text names"]),
    "size as text": ("input_size='32'", ["`input_size` must be a positive whole number"]),
    "mean not numbers": ("mean='abc'", ["`mean` must be three numbers"]),
    "plain class list not a list": (dict(class_names='"cat"'), ["is not the spec's class list", "clf-export"]),
    "plain class list disagrees": (dict(class_names='["owl", "dog", "cat"]'), ["is not the spec's class list"]),
}


@pytest.mark.parametrize("case", list(BROKEN_METADATA))
def test_broken_metadata_names_the_model_and_the_fix(tiny, tmp_path, case):
    changes, expected = BROKEN_METADATA[case]
    if isinstance(changes, str):  # a change to one field inside the spec JSON
        field, value = changes.split("=", 1)
        changes = dict(clfkit__spec=_spec_json(tiny, **{field: eval(value)}))  # noqa: S307 - test literals
    path = _with_metadata(tiny, tmp_path, **changes)
    with pytest.raises(ModelError) as info:
        Engine.from_onnx(path, device="cpu")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    for part in expected:
        assert part in message


def test_broken_metadata_is_bypassed_with_the_runs_spec(tiny, tmp_path):
    path = _with_metadata(tiny, tmp_path, clfkit__spec="not json")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(tiny.spec.to_json())
    engine = Engine.from_onnx(path, device="cpu", spec=spec_file)
    np.testing.assert_allclose(_probe(engine), _probe(Engine.from_onnx(tiny.onnx, device="cpu")), atol=1e-6)


def test_metadata_naming_more_classes_than_the_graph_outputs_is_refused(tiny, tmp_path):
    names = ["cat", "dog", "owl", "emu"]
    path = _with_metadata(tiny, tmp_path, clfkit__spec=_spec_json(tiny, class_names=names),
                          class_names=json.dumps(names))
    with pytest.raises(ModelError, match=rf"^{path}: output 'logits' has 3 classes but the spec names 4"):
        Engine.from_onnx(path, device="cpu")


def test_a_symbolic_class_dimension_is_checked_on_the_first_run(tiny, tmp_path):
    names = ["cat", "dog", "owl", "emu"]
    path = _with_metadata(tiny, tmp_path, clfkit__spec=_spec_json(tiny, class_names=names),
                          class_names=json.dumps(names))
    # logits → Compress(keep all 3): the same numbers, but a class count onnxruntime cannot know before a run.
    proto = onnx.load(str(path))
    for node in proto.graph.node:
        node.output[:] = ["raw" if name == "logits" else name for name in node.output]
    proto.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(3, bool), "keep"))
    proto.graph.node.append(onnx.helper.make_node("Compress", ["raw", "keep"], ["logits"], axis=1))
    proto.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "classes"
    onnx.save(proto, str(path))
    engine = Engine.from_onnx(path, device="cpu")
    assert not isinstance(engine.backend.output_shape[1], int)
    with pytest.raises(ModelError, match=r"has shape \[3, 3\] for 3 inputs, but the spec names 4 classes"):
        _probe(engine)


# --- not ONNX at all ------------------------------------------------------------------------------------------
def _not_onnx(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "model.onnx"
    if kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).bytes(20_000))
    elif kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "pytorch_checkpoint":
        torch.save({"state_dict": {"w": torch.zeros(4)}}, path)
    elif kind == "folder":
        path.mkdir()
    elif kind == "unreadable":
        path.write_bytes(b"\x08\x07")
        path.chmod(0)
    return path


@pytest.mark.parametrize("kind, reason", [
    ("random_bytes", "cannot load this file as an ONNX model"),
    ("zero_bytes", "empty file (0 bytes)"),
    ("pytorch_checkpoint", "PyTorch .pt checkpoint?), not an ONNX model; convert a clf-train model.pt with clf-export"),
    ("folder", "is a folder"),
    pytest.param("unreadable", "cannot read the model file (Permission denied)",
                 marks=pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")),
])
def test_a_file_that_is_not_onnx_is_one_line_from_clf_infer(tmp_path, kind, reason):
    path = _not_onnx(tmp_path, kind)
    (tmp_path / "img").mkdir()
    draw_image(1).save(tmp_path / "img" / "a.jpg")
    line = one_error_line(_invoke("-m", path, tmp_path / "img", "--device", "cpu"))
    assert line.startswith(f"Error: {path}: ") and reason in line
    assert "[ONNXRuntimeError]" not in line and ".cc:" not in line  # onnxruntime's internals stay out
