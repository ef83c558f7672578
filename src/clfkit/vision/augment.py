"""The ONE training augmentation, and the views training computes from it.  No torch import.

:func:`augment` is a seeded random view in the usual style (torchvision's RandomResizedCrop → horizontal flip
→ small rotation → colour jitter), on PIL images, so the same function serves:

* training (:data:`TRAIN`): the random views cached for the head (:func:`training_views`) and the images of
  fine-tuning;
* test-time augmentation's random views beyond the deterministic ones (:data:`TTA_RANDOM`, milder: a random
  view should still show the whole object).

Every parameter is drawn from the ``random.Random`` passed in, in a fixed order, so a view depends only on
that generator's seed: the same in every run, process and batch order.
"""
from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageEnhance

from clfkit.spec import ModelSpec
from clfkit.vision.preprocess import PIL_FILTERS, hflip, resize_crop

__all__ = ["Augment", "TRAIN", "TTA_RANDOM", "augment", "training_views"]

# Rotation leaves corners uncovered; they are filled with a mid grey close to the ImageNet mean, which a
# normalised network sees as roughly zero input.
_FILL = (124, 116, 104)


@dataclass(frozen=True)
class Augment:
    """Ranges of one random view.  ``scale`` is the crop's share of the image area, ``ratio`` its aspect range,
    ``rotate`` the largest rotation in degrees, ``brightness``/``contrast``/``saturation`` the largest relative
    change (0 = none), ``flip`` the probability of a horizontal mirror."""

    scale: tuple[float, float] = (0.5, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: float = 0.5
    rotate: float = 15.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """In words, for help texts and reports: 'random resized crop 60-100 % area, flip, …'."""
        parts = [f"random resized crop {100 * self.scale[0]:g}-{100 * self.scale[1]:g} % area"]
        if self.flip:
            parts.append("flip")
        if self.rotate:
            parts.append(f"+-{self.rotate:g} deg rotation")
        jitter = [(n, v) for n, v in (("brightness", self.brightness), ("contrast", self.contrast),
                                      ("saturation", self.saturation)) if v]
        if jitter and len({v for _, v in jitter}) == 1:
            parts.append(f"{'/'.join(n for n, _ in jitter)} +-{100 * jitter[0][1]:g} %")
        else:
            parts += [f"{n} +-{100 * v:g} %" for n, v in jitter]
        return ", ".join(parts)


TRAIN = Augment()
TTA_RANDOM = Augment(scale=(0.6, 1.0), rotate=10.0, brightness=0.1, contrast=0.1, saturation=0.0)


def _crop_box(width: int, height: int, params: Augment, rng: random.Random) -> tuple[int, int, int, int]:
    """(left, top, width, height) of a random resized crop; the centred square after ten failed draws."""
    area = width * height
    low, high = (math.log(r) for r in params.ratio)
    for _ in range(10):
        target = area * rng.uniform(*params.scale)
        ratio = math.exp(rng.uniform(low, high))
        cw, ch = int(round((target * ratio) ** 0.5)), int(round((target / ratio) ** 0.5))
        if 0 < cw <= width and 0 < ch <= height:
            return rng.randint(0, width - cw), rng.randint(0, height - ch), cw, ch
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def augment(image: Image.Image, spec: ModelSpec, rng: random.Random, params: Augment = TRAIN) -> Image.Image:
    """One random ``input_size`` x ``input_size`` RGB view of ``image`` with ranges ``params``."""
    left, top, cw, ch = _crop_box(image.width, image.height, params, rng)
    view = image.crop((left, top, left + cw, top + ch))
    view = view.resize((spec.input_size, spec.input_size), PIL_FILTERS[spec.interpolation])
    if rng.random() < params.flip:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if params.rotate:
        view = view.rotate(rng.uniform(-params.rotate, params.rotate), resample=Image.Resampling.BILINEAR,
                           fillcolor=_FILL)
    for amount, enhancer in ((params.brightness, ImageEnhance.Brightness), (params.contrast, ImageEnhance.Contrast),
                             (params.saturation, ImageEnhance.Color)):
        if amount:
            view = enhancer(view).enhance(rng.uniform(1 - amount, 1 + amount))
    return view


def training_views(image: Image.Image, spec: ModelSpec, k: int, key: str,
                   params: Augment = TRAIN) -> list[np.ndarray]:
    """``k`` uint8 (S, S, 3) views for cached training: the eval view, its mirror, then :func:`augment` views
    seeded by ``key`` (a file's identity) and the view index."""
    center = resize_crop(image, spec)
    views = [center]
    if k > 1:
        views.append(hflip(center))
    for j in range(2, k):
        view = augment(image, spec, random.Random(f"clfkit-cache:{key}:{j}"), params)
        views.append(np.asarray(view.convert("RGB"), dtype=np.uint8))
    return views
