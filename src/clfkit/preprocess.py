"""The ONE eval preprocessing, and the deterministic TTA views built on it.  No torch import.

``preprocess(image, spec)`` is what training's validation, export verification, the onnxruntime engine, the
benchmarks and the server all call, so a model sees the same numbers everywhere.  It reproduces
torchvision's ``Resize(resize) → CenterCrop(crop) → ToTensor → Normalize`` on PIL images (same output size
rounding, same crop offsets, same Pillow filter, same float32 arithmetic); ``tests/test_preprocess.py`` holds
it to 1e-5 of torchvision.

The work is split in two so the ``--embed-preprocess`` ONNX variant can take uint8 pixels:
``resize_crop`` (geometry, uint8 HWC) and ``normalize`` (float math, CHW).
"""
from __future__ import annotations

import functools
import random
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageEnhance

from clfkit.spec import ModelSpec

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
    "random_view",
    "tta_view_names",
    "tta_views",
    "MAX_DETERMINISTIC_VIEWS",
]

PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


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
    return image.crop(_crop_box(image.width, image.height, size, "center"))


# Resizing the whole image costs (resized pixels) / (crop pixels) times the crop itself.  For photos that is a
# few times at most; for a hostile 1 x 20000 strip resized to 256 px it is 256 x 5.1M pixels, 5 GB and seconds
# per view.  Past this factor only the crops' regions are resampled (see _resized_crops).
_MAX_RESIZE_WASTE = 64


def _crop_box(width: int, height: int, size: int, where: str) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a size x size crop of a width x height image: "center" rounds its offsets
    with Python's round() as torchvision's CenterCrop does; the corner names are the TTA corner views."""
    if where == "center":
        left, top = int(round((width - size) / 2.0)), int(round((height - size) / 2.0))
    else:
        left = 0 if where.endswith("left") else width - size
        top = 0 if where.startswith("top") else height - size
    return left, top, left + size, top + size


def _resized_crops(image: Image.Image, shorter: int, size: int, interpolation: str,
                   places: Sequence[str]) -> list[Image.Image]:
    """size x size crops at ``places`` of ``image`` resized so its shorter side is ``shorter``.

    For ordinary aspect ratios this is exactly Resize(shorter) then crop, as torchvision does.  Past
    _MAX_RESIZE_WASTE only each crop's region of the source is resampled, with the same filter and scale
    (Pillow's resize ``box``): memory and time stay those of the crop, and pixels agree with the full resize
    up to float rounding of the filter positions (a level or two on photo-like content; nearest/box may take
    the neighbouring source pixel).
    """
    width, height = resized_size(image.width, image.height, shorter)
    boxes = [_crop_box(width, height, size, where) for where in places]
    if width * height <= _MAX_RESIZE_WASTE * size * size:
        resized = resize_shorter(image, shorter, interpolation)
        return [resized.crop(box) for box in boxes]
    sx, sy = image.width / width, image.height / height
    return [image.resize((size, size), PIL_FILTERS[interpolation],
                         box=(left * sx, top * sy, right * sx, bottom * sy))
            for left, top, right, bottom in boxes]


def resize_crop(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    """Geometry only: uint8 (H, W, 3) with H = W = spec.input_size."""
    [cropped] = _resized_crops(image, spec.resize_size, spec.input_size, spec.interpolation, ["center"])
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
    for c in range(3):
        np.take(lut[c], pixels[..., c], out=out[:, c])
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


# --- Test-time augmentation -------------------------------------------------------------------------------
# Views are produced as uint8 (H, W, 3) crops by the functions below, so the onnxruntime engine and a PyTorch
# model fed through torch.from_numpy(normalize(view)) compute the same TTA by construction.
_DETERMINISTIC = (
    "center",        # the eval view itself (view 0 is always the no-TTA prediction)
    "hflip",         # mirror of the center view
    "wide",          # shorter side resized to input_size: the whole short side, no border lost
    "wide_hflip",
    "top_left",      # input_size crops at the four corners of the standard resize
    "top_right",
    "bottom_left",
    "bottom_right",
)
MAX_DETERMINISTIC_VIEWS = len(_DETERMINISTIC)
_CORNERS = _DETERMINISTIC[4:]


def tta_view_names(n: int) -> list[str]:
    """Names of the first ``n`` views: the deterministic ones in order, then ``random_K`` views."""
    if n < 1:
        return ["center"]
    return [*_DETERMINISTIC[:n], *(f"random_{k}" for k in range(max(0, n - MAX_DETERMINISTIC_VIEWS)))]


def random_view(image: Image.Image, spec: ModelSpec, rng: random.Random) -> Image.Image:
    """One seeded augmentation in the training style: random resized crop (scale 0.6–1), flip, ±10° rotation,
    brightness/contrast ±10 %.  Parameters come from ``rng`` only, so the view is the same in every run."""
    w, h = image.size
    area = w * h
    for _ in range(10):
        target = area * rng.uniform(0.6, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round((target * ratio) ** 0.5)), int(round((target / ratio) ** 0.5))
        if 0 < cw <= w and 0 < ch <= h:
            left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
            break
    else:
        cw = ch = min(w, h)
        left, top = (w - cw) // 2, (h - ch) // 2
    view = image.crop((left, top, left + cw, top + ch))
    view = view.resize((spec.input_size, spec.input_size), PIL_FILTERS[spec.interpolation])
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    angle = rng.uniform(-10, 10)
    view = view.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=(124, 116, 104))
    view = ImageEnhance.Brightness(view).enhance(rng.uniform(0.9, 1.1))
    return ImageEnhance.Contrast(view).enhance(rng.uniform(0.9, 1.1))


def tta_views(image: Image.Image, spec: ModelSpec, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 (input_size, input_size, 3) views of one image; view 0 is exactly ``resize_crop``.

    Random views (beyond the eight deterministic ones) draw their parameters from ``seed`` and the view
    index only, so every image, batch order and backend gets the same views.
    """
    names = tta_view_names(n)
    size = spec.input_size
    # One resize of the standard geometry serves the center view, its mirror and the four corners.
    places = ["center", *(name for name in names if name in _CORNERS)]
    standard = dict(zip(places, _resized_crops(image, spec.resize_size, size, spec.interpolation, places)))
    center = standard["center"]
    wide = None
    views: list[Image.Image] = []
    for k, name in enumerate(names):
        if name == "center":
            views.append(center)
        elif name == "hflip":
            views.append(center.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        elif name.startswith("wide"):
            if wide is None:
                [wide] = _resized_crops(image, size, size, spec.interpolation, ["center"])
            views.append(wide if name == "wide" else wide.transpose(Image.Transpose.FLIP_LEFT_RIGHT))
        elif name in _CORNERS:
            views.append(standard[name])
        else:
            views.append(random_view(image, spec, random.Random(f"clfkit-tta:{seed}:{k}")))
    return [np.asarray(v.convert("RGB"), dtype=np.uint8) for v in views]


def stack_views(views: Sequence[np.ndarray], spec: ModelSpec) -> np.ndarray:
    """uint8 views → normalized float32 (N, 3, H, W) batch."""
    return normalize_batch(np.stack(list(views)), spec)
