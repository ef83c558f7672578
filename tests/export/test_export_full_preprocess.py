"""--embed-preprocess full: the ONNX graph that takes the decoded photo (clfkit.export.full_preprocess).

Its in-graph resize + centre crop must give the host's ``resize_crop`` pixels exactly (Pillow's fixed-point
resampler, ported), on onnxruntime and OpenVINO, for photos of every shape: odd sizes, portrait, landscape,
smaller than ``resize_size`` (upscaling), 1:8 strips, and the sizes where Pillow 13 runs its vertical pass first.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import PIL
import pytest
import torch
from click.testing import CliRunner
from helpers import draw_image, make_labelled_folder, one_error_line
from PIL import Image
from tiny_onnx import SPEC as TINY_SPEC
from tiny_onnx import TinyNet

from clfkit.artifacts.onnx_meta import INPUT_NAME, read_metadata
from clfkit.cli.export import export_cmd
from clfkit.errors import ConfigError
from clfkit.export.full_preprocess import CROP_OUTPUT, crop_model, pillow_may_resize_vertically_first
from clfkit.export.graph import export_model
from clfkit.runtime.engine import Engine
from clfkit.spec import ModelSpec
from clfkit.vision.preprocess import preprocess_batch, resize_crop, resized_size

SPEC = ModelSpec(class_names=("a", "b"), input_size=48, resize_size=56)
# (width, height): odd, landscape, portrait, exactly the resized size (no resize), upscaling, 1:8 strips both ways,
# and a tall photo whose height shrinks more than twice as much as its width (Pillow >= 13: vertical pass first).
SIZES = [(75, 61), (57, 43), (40, 91), (91, 40), (56, 56), (63, 56), (23, 17), (5, 3), (1, 1), (24, 192),
         (400, 50), (60, 400), (301, 227)]


def photo(size: tuple[int, int], seed: int) -> Image.Image:
    """A photo-like RGB image: smooth colour plus noise, with a few hard edges (what filters get wrong first)."""
    pixels = np.asarray(draw_image(seed, size, kind=seed % 3)).copy()
    rng = np.random.default_rng(seed)
    pixels[:, :: max(1, size[0] // 7)] = rng.integers(0, 256, (size[1], 1, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def ort_session(model: onnx.ModelProto | str) -> ort.InferenceSession:
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def openvino_run(model: onnx.ModelProto, folder: Path):
    """OpenVINO compiled as clfkit's OpenVINO backend does it (float32) → a function image → first output."""
    ov = pytest.importorskip("openvino")
    onnx.save(model, str(folder / "crop.onnx"))
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(folder / "crop.onnx")), "CPU",
                                  {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda pixels: np.asarray(request.infer({0: pixels})[compiled.output(0)])


def test_graph_input_is_one_uint8_photo_of_any_size():
    model = crop_model(SPEC)
    onnx.checker.check_model(model, full_check=True)
    [inp] = model.graph.input
    dims = [d.dim_value or d.dim_param for d in inp.type.tensor_type.shape.dim]
    assert inp.name == INPUT_NAME and inp.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert dims[0] == 1 and dims[3] == 3 and all(isinstance(d, str) for d in dims[1:3]), dims
    assert model.opset_import[0].version >= 18


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_in_graph_crop_is_the_host_crop_pixel_for_pixel_on_onnxruntime(interpolation):
    spec = SPEC.replace(interpolation=interpolation)
    session = ort_session(crop_model(spec))
    for k, size in enumerate(SIZES):
        image = photo(size, k)
        [got] = session.run([CROP_OUTPUT], {INPUT_NAME: np.asarray(image)[None]})
        np.testing.assert_array_equal(got[0], resize_crop(image, spec), err_msg=f"{interpolation} {size}")


def test_in_graph_crop_is_the_host_crop_pixel_for_pixel_on_openvino(tmp_path):
    run = openvino_run(crop_model(SPEC), tmp_path)  # bilinear: integer arithmetic only, exact on OpenVINO too
    for k, size in enumerate(SIZES):
        image = photo(size, k)
        np.testing.assert_array_equal(run(np.asarray(image)[None])[0], resize_crop(image, SPEC), err_msg=str(size))


def test_bicubic_on_openvino_is_within_two_levels(tmp_path):
    # OpenVINO computes the float64 bicubic weights in float32: a weight can be 2**-22 off, a pixel a level or two
    # (one in each pass).
    spec = SPEC.replace(interpolation="bicubic")
    run = openvino_run(crop_model(spec), tmp_path)
    for k, size in enumerate(SIZES):
        image = photo(size, k)
        diff = np.abs(run(np.asarray(image)[None])[0].astype(int) - resize_crop(image, spec))
        assert diff.max() <= 2 and (diff > 0).mean() < 0.01, size


def test_the_sizes_cover_both_pass_orders():
    # (60, 400) → 56 x 373: the height shrinks by 27, the width by 4, so Pillow 13 resamples vertically first.
    width, height = resized_size(60, 400, SPEC.resize_size)
    assert (400 - height) > 2 * (60 - width) > 0
    if not pillow_may_resize_vertically_first():
        pytest.skip(f"Pillow {PIL.__version__} always resamples horizontally first")


def test_an_interpolation_the_graph_does_not_implement_names_the_flag():
    with pytest.raises(ConfigError, match="--embed-preprocess full") as info:
        crop_model(SPEC.replace(interpolation="lanczos"))
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    """TinyNet exported twice: float32 input and --embed-preprocess full."""
    folder = tmp_path_factory.mktemp("full")
    torch.manual_seed(0)
    model = TinyNet(len(TINY_SPEC.class_names)).eval()
    plain = export_model(model, TINY_SPEC, folder / "model.onnx")
    full = export_model(model, TINY_SPEC, folder / "full.onnx", embed_preprocess="full")
    return model, plain, full


def test_metadata_says_uint8_image_and_the_graph_is_opset_18(tiny_models):
    _, _, full = tiny_models
    assert read_metadata(full).input_format == "uint8_image"
    proto = onnx.load(str(full))
    assert proto.opset_import[0].version >= 18
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 3]


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_predictions_agree_with_the_float32_export(tiny_models, runtime):
    model, plain, full = tiny_models
    if runtime == "openvino":
        pytest.importorskip("openvino")
    images = [photo(size, k) for k, size in enumerate(SIZES)]
    with torch.no_grad():
        reference = model(torch.from_numpy(preprocess_batch(images, TINY_SPEC))).numpy()
    engine = Engine.from_onnx(full, device="cpu", runtime=runtime, precision="fp32")
    assert engine.input_format == "uint8_image"
    logits = np.concatenate([engine.run(engine.prepare(np.asarray(im)[None])) for im in images])
    np.testing.assert_allclose(logits, reference, atol=1e-5)
    float_engine = Engine.from_onnx(plain, device="cpu", runtime=runtime, precision="fp32")
    got = [p.label for p in engine.predict(images, workers=0)]
    assert got == [p.label for p in float_engine.predict(images, workers=0)]


def test_pipeline_runs_each_photo_alone_and_keeps_error_rows(tiny_models, tmp_path):
    _, plain, full = tiny_models
    paths = []
    for k, size in enumerate([(50, 40), (33, 71), (200, 25)]):
        paths.append(tmp_path / f"p{k}.png")
        photo(size, k).save(paths[-1])
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    items = [paths[0], broken, paths[1], paths[2]]
    engine = Engine.from_onnx(full, device="cpu", runtime="onnxruntime")
    got = list(engine.predict(items, batch_size=2, keep_probs=True, workers=1))
    want = list(Engine.from_onnx(plain, device="cpu", runtime="onnxruntime").predict(items, keep_probs=True))
    assert [p.path for p in got] == [str(p) for p in items]
    assert got[1].error and got[1].label is None
    for g, w in zip(got, want):
        assert g.label == w.label and (g.error is None) == (w.error is None)


def test_tta_with_a_full_model_is_one_clear_error(tiny_models, tmp_path):
    _, _, full = tiny_models
    engine = Engine.from_onnx(full, device="cpu", runtime="onnxruntime")
    with pytest.raises(ConfigError, match="--tta 5") as info:
        list(engine.predict([photo((40, 30), 0)], tta=5))
    assert "--embed-preprocess full" in str(info.value) and "\n" not in str(info.value)
    assert len(list(engine.predict([photo((40, 30), 0)], tta=1))) == 1  # one view is what the graph does


def test_clf_infer_with_tta_and_a_full_model_fails_in_one_line(tiny_models, tmp_path):
    from clfkit.cli.infer import infer_cmd

    _, _, full = tiny_models
    folder = make_labelled_folder(tmp_path / "images", {"cat": 2})
    result = CliRunner().invoke(infer_cmd, ["--model", str(full), "--tta", "5", str(folder)])
    one_error_line(result, "--tta 5")


# --- clf-export --embed-preprocess full -------------------------------------------------------------------------
def test_clf_export_embed_preprocess_full_writes_and_verifies_it(tiny_run, tmp_path, one_thread):
    out = tmp_path / "full.onnx"
    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(out), "--verify",
                                             str(tiny_run.data / "val"), "--embed-preprocess", "full"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out).input_format == "uint8_image"
    assert "uint8_image input" in result.output and "PASS" in result.output
    report = json.loads((tmp_path / "full.verify.json").read_text())
    assert report["passed"] is True
    for entry in report["reports"]:  # one photo per call: only batch size 1 applies
        assert [r["batch_size"] for r in entry["rows"]] == [1]
        assert entry["rows"][0]["agree"] == entry["images"] == 24
        assert "agreement >= 99.5%" in entry["criteria"] or "agreement >= 98%" in entry["criteria"]  # bf16


def test_clf_export_embed_preprocess_alone_at_the_end_is_pixels(tiny_run, tmp_path, one_thread):
    out = tmp_path / "pixels.onnx"
    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(out), "--embed-preprocess"])
    assert result.exit_code == 0, result.output
    assert read_metadata(out).input_format == "uint8_nhwc"


@pytest.mark.parametrize("extra", [["--int8"], ["--fp16"]])
def test_clf_export_full_with_int8_or_fp16_is_one_clear_error(tiny_run, tmp_path, extra):
    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(tmp_path / "m.onnx"),
                                             "--embed-preprocess", "full", *extra])
    one_error_line(result, "--embed-preprocess full")
    assert not (tmp_path / "m.onnx").exists()


def test_clf_export_full_with_an_unsupported_interpolation_names_the_flag(tmp_path):
    from export_run import SPEC as RUN_SPEC
    from export_run import make_model

    from clfkit.artifacts.checkpoint import save_checkpoint

    spec = RUN_SPEC.replace(interpolation="lanczos")
    checkpoint = tmp_path / "run" / "model.pt"
    save_checkpoint(checkpoint, make_model(spec), spec, config={"data": "no/such/folder"})
    result = CliRunner().invoke(export_cmd, [str(checkpoint), str(tmp_path / "m.onnx"), "--embed-preprocess", "full"])
    assert "lanczos" in one_error_line(result, "--embed-preprocess full")
