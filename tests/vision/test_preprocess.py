"""The ONE eval preprocessing must give torchvision's numbers, and TTA views must be deterministic."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clfkit.vision.tta import MAX_DETERMINISTIC_VIEWS, tta_view_names, tta_views
from clfkit.vision.preprocess import normalize, preprocess, preprocess_batch, resize_crop, resized_size
from clfkit.spec import INTERPOLATIONS, ModelSpec

from helpers import draw_image

torch = pytest.importorskip("torch")
T = pytest.importorskip("torchvision.transforms")
InterpolationMode = T.InterpolationMode

TV_MODES = {
    "nearest": InterpolationMode.NEAREST,
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "lanczos": InterpolationMode.LANCZOS,
    "box": InterpolationMode.BOX,
    "hamming": InterpolationMode.HAMMING,
}

SIZES = [
    (300, 200),  # landscape
    (199, 301),  # portrait, odd sides
    (600, 100),  # panorama
    (100, 600),  # tall panorama
    (256, 256),  # already the resize size: no resampling at all
    (257, 255),
    (31, 47),  # smaller than every resize: upscaled
    (1, 1),
]
CROPS = [(224, 256), (32, 36), (33, 40)]  # (input_size, resize_size)


def make_spec(crop: int, resize: int, interpolation: str = "bilinear", **kw) -> ModelSpec:
    return ModelSpec(class_names=("a", "b"), input_size=crop, resize_size=resize, interpolation=interpolation,
                     **kw)


def torchvision_eval(image: Image.Image, spec: ModelSpec) -> np.ndarray:
    transform = T.Compose([
        T.Resize(spec.resize_size, interpolation=TV_MODES[spec.interpolation]),
        T.CenterCrop(spec.input_size),
        T.ToTensor(),
        T.Normalize(spec.mean, spec.std),
    ])
    return transform(image).numpy()


def test_every_spec_interpolation_has_a_torchvision_mode():
    assert set(INTERPOLATIONS) == set(TV_MODES)


# Every size x interpolation for the small crops; the (slower) 224/256 crop on every size with the two usual
# filters and on one size with every filter.
CASES = [
    *((size, crop, resize, interp) for size in SIZES for crop, resize in CROPS[1:] for interp in INTERPOLATIONS),
    *((size, 224, 256, interp) for size in SIZES for interp in ("bilinear", "bicubic")),
    *(((300, 200), 224, 256, interp) for interp in INTERPOLATIONS if interp not in ("bilinear", "bicubic")),
]


@pytest.mark.parametrize("size, crop, resize, interpolation", CASES,
                         ids=[f"{s[0]}x{s[1]}-{c}-{r}-{i}" for s, c, r, i in CASES])
def test_preprocess_matches_torchvision(size, crop, resize, interpolation):
    image = draw_image(sum(size) + crop, size, kind=crop % 3)
    spec = make_spec(crop, resize, interpolation)
    ours = preprocess(image, spec)
    expected = torchvision_eval(image, spec)
    assert ours.shape == expected.shape == (3, crop, crop)
    assert ours.dtype == np.float32
    assert np.isfinite(ours).all()
    assert np.abs(ours - expected).max() <= 1e-5


@pytest.mark.parametrize("mean, std", [((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)), ((0.5, 0.4, 0.3), (0.1, 0.2, 0.3))])
def test_preprocess_matches_torchvision_with_other_normalisation(mean, std):
    image = draw_image(3, (333, 222))
    spec = make_spec(96, 110, "bicubic", mean=mean, std=std)
    assert np.abs(preprocess(image, spec) - torchvision_eval(image, spec)).max() <= 1e-5


def test_identity_normalisation_gives_pixels_over_255():
    image = draw_image(4, (40, 40))
    spec = make_spec(40, 40, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    x = preprocess(image, spec)
    assert np.allclose(x, np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0, atol=1e-7)
    assert np.array_equal(resize_crop(image, spec), np.asarray(image))


@pytest.mark.parametrize("width, height, shorter, expected", [
    (300, 200, 256, (384, 256)),
    (200, 300, 256, (256, 384)),
    (199, 301, 36, (36, 54)),  # 36 * 301 / 199 = 54.45 → floored
    (600, 100, 40, (240, 40)),
    (10, 10, 7, (7, 7)),
])
def test_resized_size_keeps_aspect_and_floors_the_long_side(width, height, shorter, expected):
    assert resized_size(width, height, shorter) == expected


def test_resize_crop_is_uint8_hwc():
    pixels = resize_crop(draw_image(5, (120, 80)), make_spec(33, 40))
    assert pixels.shape == (33, 33, 3)
    assert pixels.dtype == np.uint8


def test_normalize_layout_and_dtype():
    pixels = np.zeros((4, 5, 3), np.uint8)
    pixels[..., 0] = 255
    spec = make_spec(4, 5, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    x = normalize(pixels, spec)
    assert x.shape == (3, 4, 5) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.allclose(x[0], 1.0) and np.allclose(x[1], -1.0) and np.allclose(x[2], -1.0)


def test_preprocess_batch_stacks_preprocess():
    spec = make_spec(32, 36, "bicubic")
    images = [draw_image(i, size) for i, size in enumerate([(50, 40), (36, 36), (90, 20), (20, 90)])]
    batch = preprocess_batch(images, spec)
    assert batch.shape == (4, 3, 32, 32)
    assert batch.dtype == np.float32
    assert batch.flags.c_contiguous
    assert np.isfinite(batch).all()
    for k, image in enumerate(images):
        assert np.array_equal(batch[k], preprocess(image, spec))


def test_preprocess_batch_accepts_a_generator_and_an_empty_list():
    spec = make_spec(32, 36)
    assert preprocess_batch((draw_image(i) for i in range(3)), spec).shape == (3, 3, 32, 32)
    empty = preprocess_batch([], spec)
    assert empty.shape == (0, 3, 32, 32) and empty.dtype == np.float32


# --- TTA -----------------------------------------------------------------------------------------------------

TTA_SPEC = make_spec(32, 40, "bilinear")


@pytest.mark.parametrize("size", [(64, 48), (48, 64), (33, 33), (300, 50)])
def test_tta_view_zero_is_the_eval_view_and_view_one_its_mirror(size):
    image = draw_image(6, size)
    views = tta_views(image, TTA_SPEC, 2)
    assert len(views) == 2
    assert np.array_equal(views[0], resize_crop(image, TTA_SPEC))
    assert np.array_equal(views[1], views[0][:, ::-1])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 9, 12])
def test_tta_returns_n_uint8_views(n):
    views = tta_views(draw_image(7, (70, 50)), TTA_SPEC, n)
    assert len(views) == n == len(tta_view_names(n))
    for view in views:
        assert view.shape == (32, 32, 3)
        assert view.dtype == np.uint8


def test_tta_with_zero_views_still_gives_the_eval_view():
    image = draw_image(8, (70, 50))
    views = tta_views(image, TTA_SPEC, 0)
    assert len(views) == 1 and np.array_equal(views[0], resize_crop(image, TTA_SPEC))
    assert tta_view_names(0) == ["center"]


def test_tta_view_names():
    assert tta_view_names(1) == ["center"]
    assert tta_view_names(2) == ["center", "hflip"]
    names = tta_view_names(MAX_DETERMINISTIC_VIEWS + 3)
    assert names[:MAX_DETERMINISTIC_VIEWS] == [
        "center", "hflip", "zoom", "zoom_hflip", "wide", "wide_hflip", "top_left", "top_right", "bottom_left",
        "bottom_right",
    ]
    assert names[MAX_DETERMINISTIC_VIEWS:] == ["random_0", "random_1", "random_2"]
    assert len(set(names)) == len(names)


def test_wide_and_corner_views_show_the_promised_regions():
    image = draw_image(9, (80, 60))
    views = dict(zip(tta_view_names(MAX_DETERMINISTIC_VIEWS), tta_views(image, TTA_SPEC, MAX_DETERMINISTIC_VIEWS)))
    # "wide": shorter side resized to the crop size, then center crop (torchvision Resize(32) + CenterCrop(32)).
    wide = T.Compose([T.Resize(32, interpolation=InterpolationMode.BILINEAR), T.CenterCrop(32)])(image)
    assert np.array_equal(views["wide"], np.asarray(wide))
    assert np.array_equal(views["wide_hflip"], views["wide"][:, ::-1])
    # "zoom": one crop-ratio step further in (resize 40 for a 32 crop → shorter side 50), then center crop.
    zoom = T.Compose([T.Resize(50, interpolation=InterpolationMode.BILINEAR), T.CenterCrop(32)])(image)
    assert np.array_equal(views["zoom"], np.asarray(zoom))
    assert np.array_equal(views["zoom_hflip"], views["zoom"][:, ::-1])
    standard = np.asarray(image.resize(resized_size(80, 60, 40), Image.Resampling.BILINEAR))  # (40, 53, 3)
    assert np.array_equal(views["top_left"], standard[:32, :32])
    assert np.array_equal(views["top_right"], standard[:32, -32:])
    assert np.array_equal(views["bottom_left"], standard[-32:, :32])
    assert np.array_equal(views["bottom_right"], standard[-32:, -32:])


def test_random_views_are_reproducible_with_a_seed():
    image = draw_image(10, (90, 70))
    n = MAX_DETERMINISTIC_VIEWS + 4
    first = tta_views(image, TTA_SPEC, n, seed=3)
    again = tta_views(image, TTA_SPEC, n, seed=3)
    other = tta_views(image, TTA_SPEC, n, seed=4)
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    # Deterministic views do not depend on the seed; random ones do.
    for a, b in zip(first[:MAX_DETERMINISTIC_VIEWS], other[:MAX_DETERMINISTIC_VIEWS]):
        assert np.array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first[MAX_DETERMINISTIC_VIEWS:], other[MAX_DETERMINISTIC_VIEWS:]))
    # Random views differ from one another and from the eval view.
    randoms = first[MAX_DETERMINISTIC_VIEWS:]
    assert not np.array_equal(randoms[0], randoms[1])
    assert not np.array_equal(randoms[0], first[0])


def test_tta_views_do_not_depend_on_how_many_are_asked_for():
    image = draw_image(11, (64, 64))
    few = tta_views(image, TTA_SPEC, MAX_DETERMINISTIC_VIEWS + 1, seed=1)
    many = tta_views(image, TTA_SPEC, MAX_DETERMINISTIC_VIEWS + 5, seed=1)
    for a, b in zip(few, many):
        assert np.array_equal(a, b)


def test_tta_views_normalise_to_finite_float32():
    views = tta_views(draw_image(12, (50, 80)), TTA_SPEC, MAX_DETERMINISTIC_VIEWS + 2, seed=0)
    batch = np.stack([normalize(v, TTA_SPEC) for v in views])
    assert batch.shape == (MAX_DETERMINISTIC_VIEWS + 2, 3, 32, 32)
    assert batch.dtype == np.float32 and np.isfinite(batch).all()
