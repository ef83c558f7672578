"""The ONE eval preprocessing.  No torch import.

``preprocess(image, spec)`` is what training's validation, export verification, the onnxruntime engine, the
benchmarks and the server all call, so a model sees the same numbers everywhere.  It reproduces
torchvision's ``Resize(resize) → CenterCrop(crop) → ToTensor → Normalize`` on PIL images (same output size
rounding, same crop offsets, same Pillow filter, same float32 arithmetic); ``tests/vision/test_preprocess.py`` holds
it to 1e-5 of torchvision.

The work is split in two so the ``--embed-preprocess`` ONNX variant can take uint8 pixels:
``resize_crop`` (geometry, uint8 HWC) and ``normalize`` (float math, CHW).
"""
from __future__ import annotations

import functools
from typing import Iterable, Sequence

import numpy as np
from PIL import Image

from clfkit.spec import INTERPOLATIONS, ModelSpec

__all__ = [
    "PIL_FILTERS",
    "resized_size",
    "resize_shorter",
    "center_crop",
    "resize_crop",
    "normalize",
    "normalize_batch",
    "preprocess",
    "preprocess_batch",
    "stack_views",
    "hflip",
    "resized_crops",
    "crop_box",
]

# The spec's interpolation names are torchvision's InterpolationMode values, which are Pillow's filter names.
PIL_FILTERS = {name: Image.Resampling[name.upper()] for name in INTERPOLATIONS}


def resized_size(width: int, height: int, shorter: int) -> tuple[int, int]:
    """(width, height) after scaling the shorter side to ``shorter``; the long side is floored as torchvision does."""
    if width <= height:
        return shorter, int(shorter * height / width)
    return int(shorter * width / height), shorter


def resize_shorter(image: Image.Image, shorter: int, interpolation: str) -> Image.Image:
    size = resized_size(image.width, image.height, shorter)
    if size == image.size:
        return image
    return image.resize(size, PIL_FILTERS[interpolation])


def center_crop(image: Image.Image, size: int) -> Image.Image:
    """A size x size crop at the centre; offsets rounded with Python's round() exactly as torchvision does."""
    return image.crop(crop_box(image.width, image.height, size, "center"))


# Resizing the whole image costs (resized pixels) / (crop pixels) times the crop itself.  For photos that is a
# few times at most; for a hostile 1 x 20000 strip resized to 256 px it is 256 x 5.1M pixels, 5 GB and seconds
# per view.  Past this factor only the crops' regions are resampled (see resized_crops).
_MAX_RESIZE_WASTE = 64


def crop_box(width: int, height: int, size: int, where: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a size x size crop of a width x height image: "center" rounds its offsets
    with Python's round() as torchvision's CenterCrop does; the corner names are the TTA corner views."""
    if where == "center":
        left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    else:
        left = 0 if where.endswith("left") else width - size
        top = 0 if where.startswith("top") else height - size
    return left, top, left + size, top + size


def resized_crops(image: Image.Image, shorter: int, size: int, interpolation: str,
                   places: Sequence[str]) -> list[Image.Image]:
    """size x size crops at ``places`` of ``image`` resized so its shorter side is ``shorter``.

    For ordinary aspect ratios this is exactly Resize(shorter) then crop, as torchvision does.  Past
    _MAX_RESIZE_WASTE only each crop's region of the source is resampled, with the same filter and scale
    (Pillow's resize ``box``): memory and time stay those of the crop, and pixels agree with the full resize
    up to float rounding of the filter positions (a level or two on photo-like content; nearest/box may take
    the neighbouring source pixel).
    """
    width, height = resized_size(image.width, image.height, shorter)
    boxes = [crop_box(width, height, size, where) for where in places]
    if width * height <= _MAX_RESIZE_WASTE * size * size:
        resized = resize_shorter(image, shorter, interpolation)
        return [resized.crop(box) for box in boxes]
    sx, sy = image.width / width, image.height / height
    return [image.resize((size, size), PIL_FILTERS[interpolation],
                         box=(left * sx, top * sy, right * sx, bottom * sy))
            for left, top, right, bottom in boxes]


def resize_crop(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """Geometry only: uint8 (H, W, 3) with H = W = spec.input_size."""
    [cropped] = resized_crops(image, spec.resize_size, spec.input_size, spec.interpolation, ["center"])
    return np.asarray(cropped.convert("RGB"), dtype=np.uint8)


@functools.lru_cache(maxsize=32)
def _lut(mean: tuple[float, float, float], std: tuple[float, float, float]) -> np.ndarray:
    """(3, 256) float32: the normalized value of every uint8 level per channel.

    Each entry is computed with the same float32 operations as torchvision's ToTensor + Normalize, so a table
    lookup gives bit-identical results at ~2.5x the speed of doing the arithmetic per pixel.
    """
    levels = np.arange(256, dtype=np.float32)[:, None] / np.float32(255.0)  # (256, 1)
    table = (levels - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)  # (256, 3)
    table = np.ascontiguousarray(table.T)
    table.flags.writeable = False
    return table


def normalize_batch(pixels: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (N, H, W, 3) → float32 (N, 3, H, W): /255 then (x - mean) / std, exactly as torchvision."""
    lut = _lut(spec.mean, spec.std)
    n, h, w, _ = pixels.shape
    out = np.empty((n, 3, h, w), np.float32)
    for c in range(3):  # fancy indexing gathers ~2x faster than np.take(..., out=) into the strided plane
        out[:, c] = lut[c][pixels[..., c]]
    return out


def normalize(pixels: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 (H, W, 3) → float32 (3, H, W)."""
    return normalize_batch(pixels[None], spec)[0]


def preprocess(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """RGB PIL image → float32 (3, input_size, input_size), the model's input for one image."""
    return normalize(resize_crop(image, spec), spec)


def preprocess_batch(images: Iterable[Image.Image], spec: ModelSpec) -> np.ndarray:
    """Several images → float32 (N, 3, input_size, input_size)."""
    arrays = [resize_crop(im, spec) for im in images]
    if not arrays:
        return np.zeros((0, 3, spec.input_size, spec.input_size), np.float32)
    return normalize_batch(np.stack(arrays), spec)


def stack_views(views: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """uint8 views → normalized float32 (N, 3, H, W) batch."""
    return normalize_batch(np.stack(list(views)), spec)


def hflip(view: np.ndarray) -> np.ndarray:
    """The mirror image of a uint8 (H, W, 3) view (the flip of training and of TTA)."""
    return np.ascontiguousarray(view[:, ::-1])
