"""int8 and fp16 variants: written beside OUT, same input/output types, load and run, close to fp32."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from export_run import SPEC

from clfkit.errors import ClfError
from clfkit.artifacts.verify_record import variant_path
from clfkit.export.quantize import quantize_int8
from clfkit.data.layout import list_images
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch, resize_crop


def _pixels(folder: Path, n: int) -> np.ndarray:
    """uint8 (n, H, W, 3) crops of real (generated-class) photos: int8 ranges were calibrated on such images."""
    return np.stack([resize_crop(load_rgb(p), SPEC) for p, _ in list_images(folder, n)])


def test_variant_names_sit_beside_out():
    assert variant_path(Path("runs/x/model.onnx"), "int8") == Path("runs/x/model.int8.onnx")
    assert variant_path(Path("m.ONNX"), "fp16") == Path("m.fp16.onnx")


@pytest.mark.parametrize("which", [0, 1], ids=["float32_nchw", "uint8_nhwc"])
@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_variant_loads_runs_and_tracks_fp32(exported, tiny_run, which, precision):
    files = exported[which].files
    assert files[precision] == variant_path(files["fp32"], precision)
    session = ort.InferenceSession(str(files[precision]), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(files["fp32"]), providers=["CPUExecutionProvider"])
    (inp,), (out,) = session.get_inputs(), session.get_outputs()
    assert inp.type == ("tensor(uint8)" if which else "tensor(float)") and out.type == "tensor(float)"
    for n in (1, 7):
        x = _pixels(tiny_run.data / "val", n)
        x = x if which else normalize_batch(x, SPEC)
        (got,), (want,) = session.run(None, {"images": x}), reference.run(None, {"images": x})
        assert got.shape == (n, 3) and got.dtype == np.float32
        assert (got.argmax(1) == want.argmax(1)).all()
        assert np.abs(got - want).max() < (0.2 if precision == "int8" else 0.01) * np.abs(want).max()


def test_int8_graph_is_quantized_and_fp16_weights_are_half(exported):
    int8 = onnx.load(str(exported[0].files["int8"]))
    ops = {n.op_type for n in int8.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert any(t.data_type == onnx.TensorProto.INT8 for t in int8.graph.initializer)
    fp16 = onnx.load(str(exported[0].files["fp16"]))
    kinds = {t.data_type for t in fp16.graph.initializer if len(t.dims) == 4}  # conv weights
    assert kinds == {onnx.TensorProto.FLOAT16}
    assert exported[0].files["int8"].stat().st_size < 0.6 * exported[0].files["fp32"].stat().st_size


def test_int8_refuses_without_readable_calibration_images(exported, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not a jpeg")
    with pytest.raises(ClfError, match="calibration"):
        quantize_int8(exported[0].files["fp32"], tmp_path / "q.onnx", [junk], SPEC)
    with pytest.raises(ClfError, match="calibration"):
        quantize_int8(exported[0].files["fp32"], tmp_path / "q.onnx", [], SPEC)
    assert not (tmp_path / "q.onnx").exists()


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_every_variant_is_plain_opset_17_for_any_runtime(exported, precision):
    model = onnx.load(str(exported[0].files[precision]))
    assert model.ir_version == 8  # readable by onnxruntime >= 1.10 and other runtimes of that age
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert {n.domain for n in model.graph.node} == {""}
