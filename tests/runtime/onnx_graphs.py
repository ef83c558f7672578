"""Small real ONNX classifiers written with onnx.helper (no torch), for runtime tests."""
from __future__ import annotations

from pathlib import Path

from onnx import TensorProto, helper

from clfkit.artifacts.onnx_meta import INPUT_NAME, OUTPUT_NAME, save_onnx
from clfkit.spec import ModelSpec

BRIGHTNESS_SPEC = ModelSpec(class_names=("dark", "light"), input_size=8, resize_size=8, mean=(0.5,) * 3,
                            std=(0.5,) * 3)


def brightness_model(path: Path) -> Path:
    """logits = (mean normalized pixel) * [-4, 4]: bright photos are "light".  Dynamic batch, clfkit metadata."""
    mean = helper.make_node("ReduceMean", [INPUT_NAME], ["m"], axes=[1, 2, 3], keepdims=0)  # (N,)
    column = helper.make_node("Unsqueeze", ["m", "axis"], ["m1"])  # (N, 1)
    logits = helper.make_node("Mul", ["m1", "w"], [OUTPUT_NAME])  # (N, 2)
    graph = helper.make_graph(
        [mean, column, logits], "brightness",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", 2])],
        [helper.make_tensor("axis", TensorProto.INT64, [1], [1]),
         helper.make_tensor("w", TensorProto.FLOAT, [1, 2], [-4.0, 4.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return save_onnx(model, path, BRIGHTNESS_SPEC, input_format="float32_nchw", precision="fp32")


def gray_photos(folder: Path) -> list[Path]:
    """Three PNGs: dark, light, dark (sorted by name)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, level in (("a_dark", 20), ("b_light", 230), ("c_dark", 60)):
        Image.new("RGB", (12, 9), (level, level, level)).save(folder / f"{name}.png")
        paths.append(folder / f"{name}.png")
    return paths
