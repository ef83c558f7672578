"""The occlusion heat-map overlay of clfkit.report.figures: drawn where the heat is, and only there."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import draw_image
from PIL import Image

from clfkit.report import figures


def _crop_and_heat() -> tuple[np.ndarray, np.ndarray]:
    crop = np.full((64, 64, 3), 128, np.uint8)  # a plain grey crop, so any colour comes from the overlay
    heat = np.zeros((64, 64), np.float32)
    heat[:32, :32] = 0.4  # the evidence: the top-left quarter
    return crop, heat


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.int16)


def test_the_grid_overlay_colours_the_evidence_and_leaves_the_rest_grey(tmp_path):
    crop, heat = _crop_and_heat()
    path = figures.image_grid([(Image.fromarray(crop), "x")], tmp_path / "g.png", overlays=[(crop, heat)])
    pixels = _pixels(path)
    colourful = np.abs(pixels - pixels.mean(axis=2, keepdims=True)).sum(axis=2) > 60  # far from any grey
    ys, xs = np.nonzero(colourful)
    assert len(ys) > 100
    # the drawn cell is square: the coloured pixels sit in the top-left quarter of the grey cell's box
    grey = np.all(np.abs(pixels - 128) < 40, axis=2) | colourful
    gy, gx = np.nonzero(grey)
    mid_y, mid_x = (gy.min() + gy.max()) / 2, (gx.min() + gx.max()) / 2
    edge = 2 * (gy.max() - gy.min()) / 64  # the smoothed edge spills over by up to two heat-map pixels
    assert np.mean((ys < mid_y + edge) & (xs < mid_x + edge)) > 0.99
    assert np.mean((ys < mid_y) & (xs < mid_x)) > 0.9
    assert plt.get_fignums() == []


def test_a_panel_with_overlays_has_them_and_differs_from_the_plain_one(tmp_path):
    crop, heat = _crop_and_heat()
    photo = draw_image(3, (96, 64))
    topk = [("cat", 0.7), ("dog", 0.2)]
    plain = figures.image_panel(photo, topk, tmp_path / "plain.png", true_label="dog")
    one = figures.image_panel(photo, topk, tmp_path / "one.png", true_label="dog",
                              overlays=[("evidence for cat", crop, heat)])
    two = figures.image_panel(photo, topk, tmp_path / "two.png", true_label="dog",
                              overlays=[("evidence for cat", crop, heat), ("evidence for dog", crop, -heat)])
    widths = [Image.open(p).size[0] for p in (plain, one, two)]
    assert widths[0] < widths[1] < widths[2]  # one more axis per overlay


def test_grid_overlays_must_match_the_items(tmp_path):
    crop, heat = _crop_and_heat()
    with pytest.raises(ValueError, match="2 overlays for 1 images"):
        figures.image_grid([(Image.fromarray(crop), "x")], tmp_path / "g.png", overlays=[None, (crop, heat)])
