"""Engine: the spec comes from the file, and ONNX equals PyTorch (with and without TTA).

The onnxruntime providers and the CUDA fallbacks are in test_backend_ort.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from clfkit.errors import ConfigError, ModelError
from clfkit.runtime import Engine
from helpers import make_labelled_folder
from tiny_onnx import torch_probs


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    root = make_labelled_folder(tmp_path / "img", {"cat": 3, "dog": 3, "owl": 2}, size=(50, 37))
    return sorted(root.rglob("*.jpg"))


def test_spec_and_provider_come_from_the_file(tiny):
    engine = Engine.from_onnx(tiny.onnx, device="cpu", threads=1)
    assert engine.spec == tiny.spec
    assert engine.input_format == "float32_nchw" and engine.precision == "fp32"
    assert engine.provider == "CPUExecutionProvider" and engine.device == "cpu"
    assert "CPUExecutionProvider" in engine.describe()


@pytest.mark.parametrize("tta", [0, 1, 2, 8, 10])  # 10 = all eight deterministic views + two random ones
def test_onnx_matches_pytorch_with_and_without_tta(tiny, photos, tta):
    engine = Engine.from_onnx(tiny.onnx, device="cpu")
    preds = list(engine.predict(photos, tta=tta, batch_size=3, keep_probs=True))
    assert [p.path for p in preds] == [str(p) for p in photos]
    for pred in preds:
        expected = torch_probs(tiny.model, tiny.spec, Path(pred.path), tta)
        np.testing.assert_allclose(pred.probs, expected, atol=1e-5)
        assert pred.index == int(np.argmax(expected))
        assert pred.label == tiny.spec.class_names[pred.index]
        np.testing.assert_allclose(pred.probs_no_tta, torch_probs(tiny.model, tiny.spec, Path(pred.path), 1),
                                   atol=1e-5)


def test_embed_preprocess_variant_gets_uint8_pixels_and_agrees(tiny, photos):
    plain = Engine.from_onnx(tiny.onnx, device="cpu")
    pixels = Engine.from_onnx(tiny.onnx_uint8, device="cpu")
    assert pixels.input_format == "uint8_nhwc"
    assert pixels.backend.input_type == "uint8"
    a = list(plain.predict(photos, tta=3, keep_probs=True))
    b = list(pixels.predict(photos, tta=3, keep_probs=True))
    assert [p.label for p in a] == [p.label for p in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-5)


def test_a_file_that_is_not_onnx_is_a_clear_error(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a model")
    with pytest.raises(ModelError, match="cannot load this file as an ONNX model"):
        Engine.from_onnx(bad, device="cpu")
    with pytest.raises(ModelError, match="model not found"):
        Engine.from_onnx(tmp_path / "missing.onnx", device="cpu")
    with pytest.raises(ModelError, match="is a folder"):
        Engine.from_onnx(tmp_path, device="cpu")


def _foreign(tiny, tmp_path: Path, batch: int | None = None) -> Path:
    """The tiny model re-saved without clfkit metadata (what another tool would export)."""
    proto = onnx.load(str(tiny.onnx))
    del proto.metadata_props[:]
    if batch is not None:
        for value in (*proto.graph.input, *proto.graph.output):
            value.type.tensor_type.shape.dim[0].dim_value = batch
    path = tmp_path / "foreign.onnx"
    onnx.save(proto, str(path))
    return path


def test_onnx_without_our_metadata_needs_an_explicit_spec(tiny, tmp_path, photos):
    foreign = _foreign(tiny, tmp_path)
    with pytest.raises(ModelError, match="not exported by clf-export"):
        Engine.from_onnx(foreign, device="cpu")
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(tiny.spec.to_json())
    engine = Engine.from_onnx(foreign, device="cpu", spec=spec_file)
    assert engine.spec == tiny.spec and engine.input_format == "float32_nchw"
    ours = [p.label for p in Engine.from_onnx(tiny.onnx, device="cpu").predict(photos)]
    assert [p.label for p in engine.predict(photos)] == ours


def test_spec_for_a_clfkit_model_must_not_contradict_its_metadata(tiny, tmp_path):
    other = tmp_path / "spec.json"
    other.write_text(json.dumps(tiny.spec.replace(class_names=["a", "b", "c"]).to_dict()))
    with pytest.raises(ConfigError, match="carries its own spec"):
        Engine.from_onnx(tiny.onnx, device="cpu", spec=other)
    assert Engine.from_onnx(tiny.onnx, device="cpu", spec=tiny.spec).spec == tiny.spec


def test_spec_that_does_not_fit_the_graph_is_refused(tiny, tmp_path):
    foreign = _foreign(tiny, tmp_path)
    with pytest.raises(ModelError, match="has 3 classes but the spec names 4"):
        Engine.from_onnx(foreign, device="cpu", spec=tiny.spec.replace(class_names=list("abcd")))


def test_fixed_batch_graph_is_fed_in_chunks(tiny, tmp_path, photos):
    engine = Engine.from_onnx(_foreign(tiny, tmp_path, batch=1), device="cpu", spec=tiny.spec)
    assert engine.fixed_batch == 1
    reference = Engine.from_onnx(tiny.onnx, device="cpu")
    got = list(engine.predict(photos, tta=2, batch_size=4, keep_probs=True))
    want = list(reference.predict(photos, tta=2, batch_size=4, keep_probs=True))
    for x, y in zip(got, want):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-6)


@pytest.mark.gpu
def test_cuda_is_really_used_when_asked(tiny, photos):
    engine = Engine.from_onnx(tiny.onnx, device="cuda")
    assert engine.provider == "CUDAExecutionProvider"
    assert engine.backend.session.get_providers()[0] == "CUDAExecutionProvider"
    cpu = Engine.from_onnx(tiny.onnx, device="cpu")
    for x, y in zip(engine.predict(photos, tta=4, keep_probs=True), cpu.predict(photos, tta=4, keep_probs=True)):
        np.testing.assert_allclose(x.probs, y.probs, atol=1e-4)


def test_a_failing_run_is_a_clear_error(tiny):
    engine = Engine.from_onnx(tiny.onnx, device="cpu")
    with pytest.raises(ModelError, match="onnxruntime failed on a batch of 2 rows on CPUExecutionProvider"):
        engine.run(np.zeros((2, 3, 8, 8), np.float32))  # wrong image size for this graph
