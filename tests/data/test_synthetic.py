"""The demo's self-made dataset: deterministic, every class drawn, real JPEGs the intake accepts."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from clfkit.data.scan import scan_labelled
from clfkit.vision.images import load_rgb
from clfkit.data.synthetic import SHAPES, draw_shape_image, make_shapes_dataset


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = np.asarray(draw_shape_image("star", 3))
    assert np.array_equal(a, np.asarray(draw_shape_image("star", 3)))
    assert not np.array_equal(a, np.asarray(draw_shape_image("star", 4)))


@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_draws_an_rgb_image_with_a_foreground(shape):
    image = draw_shape_image(shape, 0, size=96)
    assert image.mode == "RGB" and image.size == (96, 96)
    assert np.asarray(image).std() > 10  # not a blank canvas


def test_unknown_shape_is_refused():
    with pytest.raises(ValueError, match="unknown shape"):
        draw_shape_image("hexagon", 0)


def test_dataset_is_a_labelled_folder_of_decodable_jpegs_and_reproducible(tmp_path: Path):
    def digest(root: Path) -> str:
        return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(root.rglob("*.jpg")))).hexdigest()

    a = make_shapes_dataset(tmp_path / "a", per_class=3, shapes=("circle", "ring"), size=64)
    b = make_shapes_dataset(tmp_path / "b", per_class=3, shapes=("circle", "ring"), size=64)
    folder = scan_labelled(a)
    assert folder.classes == ("circle", "ring") and folder.num_images == 6
    assert all(load_rgb(p).size == (64, 64) for p, _ in folder.items())
    assert digest(a) == digest(b)
