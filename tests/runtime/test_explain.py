"""clfkit.runtime.explain: occlusion heat maps computed through the exported model, and the report figures
that show them (clf-infer --report DIR --visualize N)."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper
from PIL import Image

from clfkit.artifacts.onnx_meta import INPUT_NAME, OUTPUT_NAME, save_onnx
from clfkit.cli.infer import infer_cmd
from clfkit.errors import ConfigError
from clfkit.export.full_preprocess import FULL_MIN_OPSET, prepend_preprocess
from clfkit.runtime.engine import Engine
from clfkit.runtime.explain import (MAX_ROWS, Occlusion, OcclusionConfig, heat_map, occluded_copies,
                                    patch_boxes)
from clfkit.runtime.infer import run_infer
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from helpers import draw_image, make_labelled_folder, one_error_line

# "light" when the top-left quarter of the model's crop is bright: nothing else of the image counts.
QUARTER = ModelSpec(class_names=("dark", "light"), input_size=16, resize_size=20, mean=(0.5,) * 3, std=(0.5,) * 3)
HALF = QUARTER.input_size // 2


def _const(name: str, values, dtype=TensorProto.INT64, dims=None):
    values = list(values)
    return helper.make_tensor(name, dtype, [len(values)] if dims is None else dims, values)


def _quarter_graph(uint8: bool):
    """logits = mean of the normalised top-left quarter × [-1, 1] (float32 NCHW, or uint8 NHWC normalised in the
    graph as --embed-preprocess does)."""
    nodes, inits = [], [_const("w", [-1.0, 1.0], TensorProto.FLOAT, [1, 2]), _const("unsq", [1])]
    x = INPUT_NAME
    if uint8:
        nodes += [helper.make_node("Cast", [x], ["xf"], to=TensorProto.FLOAT),
                  helper.make_node("Div", ["xf", "c255"], ["x01"]),
                  helper.make_node("Sub", ["x01", "half"], ["xc"]),
                  helper.make_node("Div", ["xc", "half"], ["xn"])]
        inits += [_const("c255", [255.0], TensorProto.FLOAT, []), _const("half", [0.5], TensorProto.FLOAT, [])]
        x, axes = "xn", [1, 2]
    else:
        axes = [2, 3]
    nodes += [helper.make_node("Slice", [x, "starts", "ends", "axes"], ["quarter"]),
              helper.make_node("ReduceMean", ["quarter", "all"], ["m"], keepdims=0),  # (N,)
              helper.make_node("Unsqueeze", ["m", "unsq"], ["m1"]),  # (N, 1)
              helper.make_node("Mul", ["m1", "w"], [OUTPUT_NAME])]  # (N, 2)
    inits += [_const("starts", [0, 0]), _const("ends", [HALF, HALF]), _const("axes", axes), _const("all", [1, 2, 3])]
    size = QUARTER.input_size
    shape = ["batch", size, size, 3] if uint8 else ["batch", 3, size, size]
    graph = helper.make_graph(
        nodes, "quarter", [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8 if uint8 else TensorProto.FLOAT,
                                                         shape)],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", FULL_MIN_OPSET)], ir_version=8)


@pytest.fixture(scope="module")
def quarter(tmp_path_factory) -> dict[str, Path]:
    """The quarter model in the three input formats clfkit exports."""
    folder = tmp_path_factory.mktemp("quarter")
    float_graph = _quarter_graph(uint8=False)
    return {
        "float32_nchw": save_onnx(copy.deepcopy(float_graph), folder / "f.onnx", QUARTER,
                                  input_format="float32_nchw", precision="fp32"),
        "uint8_nhwc": save_onnx(_quarter_graph(uint8=True), folder / "u.onnx", QUARTER, input_format="uint8_nhwc",
                                precision="fp32"),
        "uint8_image": save_onnx(prepend_preprocess(float_graph, QUARTER), folder / "full.onnx", QUARTER,
                                 input_format="uint8_image", precision="fp32"),
    }


def _photo() -> Image.Image:
    """40 × 32: resized to 25 × 20 and center-cropped at (4, 2), so photo pixels [0:16, 0:19] become the crop's
    top-left quarter (about); bright there, dark with noise elsewhere."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(20, 90, (32, 40, 3)).astype(np.uint8)
    pixels[:16, :19] = 230
    return Image.fromarray(pixels)


def _counting(engine: Engine) -> list[int]:
    """Record the rows of every Engine.run call (the real call still runs)."""
    sizes: list[int] = []
    real = engine.run

    def run(batch):
        sizes.append(len(batch))
        return real(batch)

    engine.run = run  # type: ignore[method-assign]
    return sizes


@pytest.mark.parametrize("fmt", ["float32_nchw", "uint8_nhwc", "uint8_image"])
def test_the_heat_is_where_the_evidence_is(quarter, fmt):
    engine = Engine.from_onnx(quarter[fmt], device="cpu", runtime="onnxruntime")
    assert engine.input_format == fmt
    sizes = _counting(engine)
    result = Occlusion(engine, OcclusionConfig(grid=7, patch=0.25, batch_size=32)).explain(_photo(), [1])
    assert result.grids.shape == (1, 7, 7) and result.maps.shape == (1, 16, 16)
    assert np.isfinite(result.grids).all() and np.isfinite(result.maps).all()
    assert result.base[0] > 0.75  # "light", from the bright quarter
    boxes = patch_boxes(16, 7, 0.25)
    drops = result.grids[0].ravel()
    inside = np.array([b <= HALF and r <= HALF for _, _, b, r in boxes])
    outside = np.array([t >= HALF + 1 or le >= HALF + 1 for t, le, _, _ in boxes])  # a pixel clear of the edge
    assert (drops[inside] > 0.02).all()  # hiding any part of the quarter lowers "light"
    assert np.abs(drops[outside]).max() < 1e-6 if fmt != "uint8_image" else np.abs(drops[outside]).max() < 0.005
    assert inside[int(np.argmax(drops))]
    heat = np.clip(result.maps[0], 0, None)
    assert heat[:HALF, :HALF].sum() / heat.sum() > 0.75
    # cost: the unoccluded view + 49 copies, in two batched calls (one call per copy for a whole-photo model)
    assert result.rows == sum(sizes) == 50 <= MAX_ROWS
    assert sizes == ([1] * 50 if fmt == "uint8_image" else [32, 18]) and result.calls == len(sizes)


def test_all_input_formats_see_the_same_occlusions(quarter):
    """The occluded copies are the deployed crop's pixels whatever the format: float and uint8 models agree."""
    photo = _photo()
    grids = {fmt: Occlusion(Engine.from_onnx(path, device="cpu", runtime="onnxruntime")).explain(photo, [1]).grids
             for fmt, path in quarter.items()}
    np.testing.assert_allclose(grids["uint8_nhwc"], grids["float32_nchw"], atol=1e-5)
    # the whole-photo graph resizes the painted photo itself: the patch edges blur by a pixel, no more
    np.testing.assert_allclose(grids["uint8_image"], grids["float32_nchw"], atol=0.03)


def test_tiny_model_maps_of_both_classes_and_batches(tiny, tmp_path):
    image = draw_image(5, kind=1)
    floats, uint8s = (Engine.from_onnx(p, device="cpu", runtime="onnxruntime") for p in (tiny.onnx, tiny.onnx_uint8))
    sizes = _counting(floats)
    occlusion = Occlusion(floats, OcclusionConfig(grid=8, patch=0.2, batch_size=24))
    result = occlusion.explain(image, [1, 0, 1])  # predicted dog, "true" cat; the repeat is dropped
    assert result.classes == (1, 0)
    assert result.grids.shape == (2, 8, 8) and result.maps.shape == (2, 32, 32) and result.crop.shape == (32, 32, 3)
    assert np.isfinite(result.maps).all() and np.abs(result.grids).max() > 0  # occlusion moves this model
    assert sizes == [24, 24, 17] and max(sizes) <= 24 and result.rows == 65 == MAX_ROWS
    again = Occlusion(uint8s, OcclusionConfig(grid=8, patch=0.2, batch_size=24)).explain(image, [1, 0])
    np.testing.assert_allclose(again.grids, result.grids, atol=1e-4)
    assert occlusion.summary()["photos"] == 1 and occlusion.summary()["model_calls"] == 3


def test_patches_cover_the_crop_and_overlap():
    boxes = patch_boxes(260, 7, 0.25)
    assert len(boxes) == 49 and boxes[0][:2] == (0, 0) and boxes[-1][2:] == (260, 260)
    side = boxes[0][2] - boxes[0][0]
    assert side == 65 and boxes[1][1] < side  # the next patch starts inside this one
    assert np.allclose(heat_map(np.ones(49), boxes, 260), 1)  # a flat grid upsamples to a flat map
    peak = heat_map(np.eye(49)[24], boxes, 260)  # only the middle position matters
    assert np.unravel_index(np.argmax(peak), peak.shape) in {(129, 129), (129, 130), (130, 129), (130, 130)}
    assert peak.max() <= 1 and peak[:64].max() == 0  # it fades out by the next patch centre
    copies = occluded_copies(np.zeros((260, 260, 3), np.uint8), boxes[:2], np.array([128, 128, 128], np.uint8))
    assert (copies[0, :65, :65] == 128).all() and (copies[0, 65:] == 0).all()


@pytest.mark.parametrize("kwargs, flag", [({"grid": 9}, "grid"), ({"grid": 1}, "grid"), ({"patch": 0.1}, "patch"),
                                          ({"patch": 1.0}, "patch"), ({"batch_size": 0}, "--batch-size")])
def test_bad_settings_are_refused(kwargs, flag):
    with pytest.raises(ConfigError, match=flag):
        OcclusionConfig(**kwargs)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """cat 3 (+1 green the model calls dog: a mistake), dog 2, owl 2."""
    root = make_labelled_folder(tmp_path / "test", {"cat": 3, "dog": 2, "owl": 2})
    draw_image(99, kind=1).save(root / "cat" / "z_green.jpg")
    return root


def test_report_panels_and_mistakes_carry_the_heat_maps(tiny, labelled, tmp_path):
    engine = Engine.from_onnx(tiny.onnx, device="cpu", runtime="onnxruntime")
    lines: list[str] = []
    on, off = tmp_path / "on", tmp_path / "off"
    run_infer(engine, [labelled], report=on, visualize=2, workers=0, log=lines.append)
    run_infer(engine, [labelled], report=off, visualize=2, workers=0, explain=False)
    metrics = json.loads((on / "metrics.json").read_text())
    cost = metrics["explanations"]
    # panels: 2 photos; mistakes: the green cat → 3 photos, 50 rows each
    assert cost["photos"] == 3 and cost["model_rows"] == 150 and cost["seconds"] > 0
    assert cost["model_calls"] == 3 * math.ceil(50 / 32) and cost["grid"] == 7
    assert "explanations" not in json.loads((off / "metrics.json").read_text())
    assert any("occlusion heat maps of 3 photo(s)" in line for line in lines)
    panels = sorted(p.name for p in (on / "panels").iterdir())
    assert panels == sorted(p.name for p in (off / "panels").iterdir()) and len(panels) == 2
    for name in [*(f"panels/{p}" for p in panels), "misclassified.png"]:
        with Image.open(on / name) as a, Image.open(off / name) as b:
            assert a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b)), name
    for name in (p.name for p in (on / "grids").iterdir()):  # the per-class grids are not explained
        assert (on / "grids" / name).read_bytes() == (off / "grids" / name).read_bytes()


def test_a_mistake_is_explained_for_both_classes(tiny, labelled, tmp_path):
    """The green cat: heat maps of the predicted "dog" and of the true "cat", from one batch of occlusions."""
    from clfkit.runtime.explain import explain_predictions, overlays

    engine = Engine.from_onnx(tiny.onnx, device="cpu", runtime="onnxruntime")
    [pred] = engine.predict([labelled / "cat" / "z_green.jpg"])
    assert pred.label == "dog"
    done = explain_predictions(Occlusion(engine), [(pred, "cat")], {"cat": 0, "dog": 1, "owl": 2})
    shown = overlays(done[pred.path], tiny.spec.class_names, "cat")
    assert [title.splitlines()[0] for title, _, _ in shown] == ["evidence for dog", "evidence for cat"]
    assert "true class" in shown[1][0] and shown[0][1].shape == (32, 32, 3)
    # drawn as the share of each class's own probability: the true class's small one is not lost on the scale
    result = done[pred.path]
    assert result.base[1] < 0.01 < result.base[0]
    np.testing.assert_allclose(shown[1][2] * result.base[1], result.maps[1], rtol=1e-4, atol=1e-9)
    direct = Occlusion(engine).explain(load_rgb(pred.path), [1, 0])
    np.testing.assert_array_equal(done[pred.path].grids, direct.grids)


def test_no_explain_needs_visualize(tiny, labelled, tmp_path):
    result = CliRunner().invoke(infer_cmd, ["--model", str(tiny.onnx), str(labelled), "--report", str(tmp_path / "r"),
                                            "--no-explain"], catch_exceptions=False)
    assert result.exit_code == 1
    assert "--no-explain" in one_error_line(result) and "--visualize" in one_error_line(result)


def test_clf_infer_no_explain_runs(tiny, labelled, tmp_path):
    out = tmp_path / "r"
    result = CliRunner().invoke(infer_cmd, ["--model", str(tiny.onnx), str(labelled), "--report", str(out),
                                            "--visualize", "1", "--no-explain", "--device", "cpu", "-o",
                                            str(tmp_path / "p.csv")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "occlusion" not in result.output and "explanations" not in json.loads((out / "metrics.json").read_text())
    assert len(list((out / "panels").iterdir())) == 1


def test_an_unlabelled_report_explains_its_panels(tiny, tmp_path):
    """No true labels: the panels get the predicted class's map, summary.json says what it cost."""
    folder = tmp_path / "loose"
    folder.mkdir()
    for i in range(3):
        draw_image(i, kind=i).save(folder / f"{i}.jpg")
    engine = Engine.from_onnx(tiny.onnx, device="cpu", runtime="onnxruntime")
    run_infer(engine, [folder], report=tmp_path / "r", visualize=2, workers=0, tta=2, batch_size=4)
    cost = json.loads((tmp_path / "r" / "summary.json").read_text())["explanations"]
    assert cost["photos"] == 2 and cost["model_rows"] == 100
    assert cost["model_calls"] == 2 * math.ceil(50 / 8)  # rows per call: --batch-size × TTA views, as the run
    assert len(list((tmp_path / "r" / "panels").iterdir())) == 2
