"""Reduced-precision variants of an exported fp32 ONNX file: int8 (static, calibrated) and fp16.

Both are path-in/path-out like ``onnxruntime.quantization``; both keep the fp32 file's input and output
(float32 or uint8 input, float32 ``logits``) and its metadata, with ``clfkit.precision`` changed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import numpy as np
import onnx
from PIL import Image

from clfkit.artifacts.onnx_meta import INPUT_NAME, read_metadata, save_onnx
from clfkit.errors import ClfError, ImageError, printable
from clfkit.export.simplify import drop_unused_opsets
from clfkit.spec import ModelSpec
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize_batch, resize_crop

__all__ = ["INT8_SETTINGS", "calibration_reader", "quantize_int8", "convert_fp16"]

ImageLike = Union[Image.Image, Path, str]

# Static QDQ quantization.  uint8 activations / int8 weights: the pair MLAS has fast (VNNI) kernels for; the
# other pairs leave fp32 Convs wrapped in Q/DQ.  Per-channel weights: depthwise kernels differ per channel by
# orders of magnitude, so one scale per tensor loses accuracy.  MinMax calibration: cheaper than Percentile and as
# good.  The measurements are in benchmarks/results/design-choices.md.  Kept internal: no CLI flag per knob.
INT8_SETTINGS: dict[str, Any] = {
    "quant_format": "QDQ",
    "activation_type": "QUInt8",
    "weight_type": "QInt8",
    "per_channel": True,
    "calibrate_method": "MinMax",
    "extra_options": {},
}
CALIBRATION_BATCH = 16



def _load(item: ImageLike) -> Image.Image | ImageError:
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    try:
        return load_rgb(item)
    except ImageError as exc:
        return exc  # an unreadable calibration file is skipped, like clf-split's quarantine


def calibration_reader(images: Sequence[ImageLike], spec: ModelSpec, input_format: str,
                      batch_size: int = CALIBRATION_BATCH, log: Callable[[str], None] = lambda msg: None):
    """A ``CalibrationDataReader`` feeding ``images`` through the one preprocessing, a batch at a time.

    Unreadable files are left out, each named once in ``log`` (even when the reader is rewound)."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = [list(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]
            self.index = 0
            self.used = 0
            self.skipped: set[str] = set()

        def _images(self, batch: list[ImageLike]) -> list[Image.Image]:
            loaded = []
            for image in map(_load, batch):
                if not isinstance(image, ImageError):
                    loaded.append(image)
                elif image.path not in self.skipped:
                    self.skipped.add(image.path)
                    log(f"skipped unreadable calibration image {printable(image.path)}: {image.reason}")
            return loaded

        def get_next(self) -> dict[str, np.ndarray] | None:
            while self.index < len(self.batches):
                loaded = self._images(self.batches[self.index])
                self.index += 1
                if loaded:
                    self.used += len(loaded)
                    pixels = np.stack([resize_crop(im, spec) for im in loaded])  # uint8 (N, H, W, 3)
                    return {INPUT_NAME: pixels if input_format == "uint8_nhwc" else normalize_batch(pixels, spec)}
            return None

        def rewind(self) -> None:
            self.index = 0

    return Reader()


def quantize_int8(fp32_path: Path, out_path: Path, calibration: Sequence[ImageLike], spec: ModelSpec,
                  log: Callable[[str], None] = lambda msg: None) -> Path:
    """Static int8 quantization of ``fp32_path`` calibrated on ``calibration`` images → ``out_path``
    (unreadable calibration files are skipped, one ``log`` line each).

    Runs ``quant_pre_process`` (symbolic shape inference + onnxruntime graph optimizations) first, as
    onnxruntime recommends, then ``quantize_static`` with :data:`INT8_SETTINGS`.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ClfError("--int8 needs calibration images: none were found (pass --calibration DIR)")
    meta = read_metadata(fp32_path)
    settings = dict(INT8_SETTINGS)
    reader = calibration_reader(calibration, spec, meta.input_format, log=log)
    with tempfile.TemporaryDirectory(prefix="clfkit-int8-") as tmp:
        pre, quant = Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        try:
            quantize_static(
                str(pre), str(quant), reader,
                quant_format=getattr(QuantFormat, settings["quant_format"]),
                activation_type=getattr(QuantType, settings["activation_type"]),
                weight_type=getattr(QuantType, settings["weight_type"]),
                per_channel=settings["per_channel"],
                calibrate_method=getattr(CalibrationMethod, settings["calibrate_method"]),
                extra_options=dict(settings["extra_options"]),
            )
        except ValueError:
            if reader.used:
                raise
            raise ClfError("--int8: none of the calibration images could be read (pass --calibration DIR with "
                           "photos of the kind the model will see)") from None
        proto = drop_unused_opsets(onnx.load(str(quant)))
    return save_onnx(proto, out_path, spec, input_format=meta.input_format, precision="int8")


def convert_fp16(fp32_path: Path, out_path: Path, spec: ModelSpec) -> Path:
    """fp16 weights and arithmetic for GPU deployment; input and output keep their fp32 (or uint8) types."""
    from onnxruntime.transformers.onnx_model import OnnxModel

    meta = read_metadata(fp32_path)
    model = OnnxModel(onnx.load(str(fp32_path)))
    # keep_io_types inserts Casts at the graph edges so callers keep feeding float32 and reading float32;
    # the wrapper also drops Cast pairs that cancel out, but leaves nodes unsorted, which ONNX forbids.
    model.convert_float_to_float16(keep_io_types=True)
    model.topological_sort()
    return save_onnx(model.model, out_path, spec, input_format=meta.input_format, precision="fp16")
