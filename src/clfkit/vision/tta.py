"""Test-time augmentation: the deterministic views and their names.  No torch import.

Views are produced as uint8 (H, W, 3) crops, so every runtime, and a PyTorch model fed through
``torch.from_numpy(normalize(view))``, computes the same TTA by construction.  View 0 is always the eval view
itself (:func:`clfkit.vision.preprocess.resize_crop`), so the no-TTA prediction comes out of the same run.
"""
from __future__ import annotations

import random

import numpy as np
from PIL import Image

from clfkit.spec import ModelSpec
from clfkit.vision.augment import TTA_RANDOM, augment
from clfkit.vision.preprocess import hflip, resized_crops

__all__ = ["MAX_DETERMINISTIC_VIEWS", "tta_view_names", "tta_views"]

# Order = what --tta N takes first.  Flips and scales come first and the corner crops last, measured on two
# pairs of models (boats + trashnet, val + test: 4 sets each; benchmarks/tta_views.py).  On the earlier models
# the old order (center, flip, wide x2, corners) cost 0.8 pt at --tta 5 on average against no TTA, and this one
# 0.06 pt (even); on the partly fine-tuned models of benchmarks/results/tta.md both gain at every N (--tta 5:
# +1.1 pt this order, +1.5 the old one, about one image a set).  This order is the one that lost nothing real on
# either; a corner crop alone is among the worst single views (it cuts the object off).
_DETERMINISTIC = (
    "center",        # the eval view itself (view 0 is always the no-TTA prediction)
    "hflip",         # mirror of the center view
    "zoom",          # one crop-ratio step further in: shorter side resize_size^2 / input_size, center crop
    "zoom_hflip",
    "wide",          # shorter side resized to input_size: the whole short side, no border lost
    "wide_hflip",
    "top_left",      # input_size crops at the four corners of the standard resize
    "top_right",
    "bottom_left",
    "bottom_right",
)
MAX_DETERMINISTIC_VIEWS = len(_DETERMINISTIC)
_CORNERS = _DETERMINISTIC[6:]


def tta_view_names(n: int) -> list[str]:
    """Names of the first ``n`` views: the deterministic ones in order, then ``random_K`` views."""
    if n < 1:
        return ["center"]
    return [*_DETERMINISTIC[:n], *(f"random_{k}" for k in range(max(0, n - MAX_DETERMINISTIC_VIEWS)))]


def tta_views(image: Image.Image, spec: ModelSpec, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` uint8 (input_size, input_size, 3) views of one image; view 0 is exactly ``resize_crop``.

    Random views (beyond the eight deterministic ones) draw their parameters from ``seed`` and the view
    index only, so every image, batch order and backend gets the same views.
    """
    names = tta_view_names(n)
    size = spec.input_size
    # One resize of the standard geometry serves the center view, its mirror and the four corners.
    places = ["center", *(name for name in names if name in _CORNERS)]
    standard = {place: _pixels(crop) for place, crop in
                zip(places, resized_crops(image, spec.resize_size, size, spec.interpolation, places))}
    wide = zoom = None
    views: list[np.ndarray] = []
    for k, name in enumerate(names):
        if name in ("center", *_CORNERS):
            views.append(standard[name])
        elif name == "hflip":
            views.append(hflip(standard["center"]))
        elif name.startswith("zoom"):
            if zoom is None:
                shorter = max(size, int(round(spec.resize_size * spec.resize_size / size)))
                zoom = _pixels(resized_crops(image, shorter, size, spec.interpolation, ["center"])[0])
            views.append(zoom if name == "zoom" else hflip(zoom))
        elif name.startswith("wide"):
            if wide is None:
                wide = _pixels(resized_crops(image, size, size, spec.interpolation, ["center"])[0])
            views.append(wide if name == "wide" else hflip(wide))
        else:
            views.append(_pixels(augment(image, spec, random.Random(f"clfkit-tta:{seed}:{k}"), TTA_RANDOM)))
    return views


def _pixels(view: Image.Image) -> np.ndarray:
    return np.asarray(view.convert("RGB"), dtype=np.uint8)
