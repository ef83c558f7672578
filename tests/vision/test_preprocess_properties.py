"""Property tests for preprocess and the TTA views: any decodable image, any valid spec → the spec's shape,
dtype and finite numbers; any undecodable file → ImageError before preprocessing starts.

Sizes run from 1x1 to strips of 1 x 4000 (past the point where only the crops' regions are resampled), and
specs vary input/resize size, interpolation, mean and std.
"""
from __future__ import annotations

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from helpers import run_without_torch
from test_images_properties import make_image, valid_files

from clfkit.errors import ImageError
from clfkit.vision.images import load_rgb
from clfkit.vision.tta import MAX_DETERMINISTIC_VIEWS, tta_view_names, tta_views
from clfkit.vision.preprocess import (center_crop, normalize, preprocess, preprocess_batch, resize_crop, resize_shorter, resized_size, stack_views)
from clfkit.vision.augment import TRAIN, TTA_RANDOM, augment
from clfkit.spec import INTERPOLATIONS, ModelSpec

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def specs(draw) -> ModelSpec:
    """Small input sizes keep examples fast; mean/std cover the usual ranges and odd ones (mean 0, std 0.01)."""
    size = draw(st.integers(1, 48))
    channel = st.tuples(st.floats(-1.0, 2.0), st.floats(-1.0, 2.0), st.floats(-1.0, 2.0))
    positive = st.tuples(*[st.floats(0.01, 5.0)] * 3)
    return ModelSpec(class_names=("a", "b"), input_size=size, resize_size=size + draw(st.integers(0, 32)),
                     interpolation=draw(st.sampled_from(INTERPOLATIONS)), mean=draw(channel), std=draw(positive))


@st.composite
def rgb_images(draw) -> Image.Image:
    """Random RGB pixels in sizes from 1x1 to 1 x 4000 strips."""
    short = draw(st.integers(1, 12))
    long = draw(st.one_of(st.integers(short, 80), st.integers(500, 4000)))
    size = (short, long) if draw(st.booleans()) else (long, short)
    return make_image("RGB", size, draw(st.integers(0, 2**32 - 1)))


def assert_model_input(x: np.ndarray, spec: ModelSpec, batch: int | None = None) -> None:
    shape = (3, spec.input_size, spec.input_size)
    assert x.shape == (shape if batch is None else (batch, *shape))
    assert x.dtype == np.float32 and np.isfinite(x).all()


def assert_view(view: np.ndarray, spec: ModelSpec) -> None:
    assert view.shape == (spec.input_size, spec.input_size, 3) and view.dtype == np.uint8


@FAST
@given(rgb_images(), specs())
def test_preprocess_gives_the_specs_shape_dtype_and_finite_values(image, spec):
    x = preprocess(image, spec)
    assert_model_input(x, spec)
    pixels = resize_crop(image, spec)
    assert_view(pixels, spec)
    assert np.array_equal(x, normalize(pixels, spec))  # the two halves compose to the whole
    assert_model_input(preprocess_batch([image, image], spec), spec, batch=2)


@FAST
@given(rgb_images(), specs(), st.integers(-1, MAX_DETERMINISTIC_VIEWS + 3), st.integers(0, 2**16))
def test_tta_views_are_n_model_inputs_and_view_zero_is_the_eval_view(image, spec, n, seed):
    views = tta_views(image, spec, n, seed=seed)
    assert len(views) == max(1, n) == len(tta_view_names(n))
    for view in views:
        assert_view(view, spec)
    assert np.array_equal(views[0], resize_crop(image, spec))
    assert_model_input(stack_views(views, spec), spec, batch=len(views))


@FAST
@given(rgb_images(), specs(), st.integers(0, 2**32 - 1))
def test_random_view_is_an_input_sized_rgb_image_and_reproducible(image, spec, seed):
    for params in (TRAIN, TTA_RANDOM):  # the training augmentation, and its milder TTA setting
        view = augment(image, spec, random.Random(seed), params)
        assert view.mode == "RGB" and view.size == (spec.input_size, spec.input_size)
        assert np.array_equal(np.asarray(view), np.asarray(augment(image, spec, random.Random(seed), params)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(valid_files().map(lambda drawn: drawn[0]), st.binary(max_size=512)),
       st.floats(0.5, 1.0), specs(), st.integers(1, MAX_DETERMINISTIC_VIEWS + 2))
def test_any_file_is_model_input_or_an_image_error(data, keep, spec, n):
    """End to end as clf-infer does it: bytes (valid, random or cut short) → load_rgb → TTA views."""
    try:
        image = load_rgb(data[: max(1, int(len(data) * keep))])
    except ImageError:
        return
    assert_model_input(preprocess(image, spec), spec)
    assert_model_input(stack_views(tta_views(image, spec, n), spec), spec, batch=n)


def _smooth(size: tuple[int, int], seed: int) -> Image.Image:
    """Sinusoids of 5-25 px period per channel: real-photo-like smoothness, yet any misplaced crop shows."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size[1], 0:size[0]]
    freq, phase = rng.uniform(0.25, 1.2, 3), rng.uniform(0, 2 * np.pi, 3)
    channels = [127 + 120 * np.sin(freq[c] * (xx + 0.7 * yy) / 5 + phase[c]) for c in range(3)]
    return Image.fromarray(np.stack(channels, -1).astype(np.uint8))


@FAST
@given(st.integers(1, 8), st.integers(600, 3000), st.booleans(), st.integers(1, 24), st.integers(0, 8),
       st.sampled_from(INTERPOLATIONS), st.integers(0, 2**16))
def test_a_strip_resamples_only_its_crops_yet_shows_the_same_pixels(short, long, tall, size, extra, interpolation,
                                                                    seed):
    spec = ModelSpec(class_names=("a",), input_size=size, resize_size=size + extra, interpolation=interpolation)
    image = _smooth((short, long) if tall else (long, short), seed)
    # The exact geometry (full resize, then crops) is affordable at these sizes: compare against it.
    standard = resize_shorter(image, spec.resize_size, interpolation)
    width, height = resized_size(image.width, image.height, spec.resize_size)
    expected = [center_crop(standard, size), None, None, None, None, None]
    expected += [standard.crop(box) for box in [(0, 0, size, size), (width - size, 0, width, size),
                                                (0, height - size, size, height),
                                                (width - size, height - size, width, height)]]
    source = np.asarray(image, np.int16)
    # One neighbouring source pixel (diagonal at worst): the most a filter position that differs in its last
    # bits can change.
    step = np.abs(np.diff(source, axis=0)).max(initial=0) + np.abs(np.diff(source, axis=1)).max(initial=0)
    views = tta_views(image, spec, MAX_DETERMINISTIC_VIEWS)
    for name, view, want in zip(tta_view_names(MAX_DETERMINISTIC_VIEWS), views, expected):
        if want is None:  # hflip and the zoom and wide views are checked elsewhere
            continue
        diff = np.abs(view.astype(np.int16) - np.asarray(want, np.int16))
        assert diff.max() <= step + 2, (name, diff.max(), step)


def test_a_hostile_strip_costs_the_memory_of_its_crops_not_of_its_resize():
    # A 1 x 4000 strip (a 12 KB file) resized to 256 px would be 256 x 1M pixels, 1 GB, before the 224 px crops.
    # Peak memory is measured in a fresh interpreter, where nothing else has raised the high-water mark.
    result = run_without_torch(
        "import resource\n"
        "from PIL import Image\n"
        "from clfkit.vision.preprocess import preprocess\n"
        "from clfkit.vision.tta import MAX_DETERMINISTIC_VIEWS, tta_views\n"
        "from clfkit.spec import INTERPOLATIONS, ModelSpec\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024\n"
        "strips = [Image.new('RGB', size, (10, 200, 30)) for size in [(1, 4000), (4000, 1)]]\n"
        "before = peak()\n"
        "for interpolation in INTERPOLATIONS:\n"
        "    spec = ModelSpec(class_names=('a',), input_size=224, resize_size=256, interpolation=interpolation)\n"
        "    for strip in strips:\n"
        "        assert preprocess(strip, spec).shape == (3, 224, 224)\n"
        "        assert len(tta_views(strip, spec, MAX_DETERMINISTIC_VIEWS + 2)) == MAX_DETERMINISTIC_VIEWS + 2\n"
        "print(peak() - before)\n"
    )
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) < 100, f"preprocessing a strip raised peak memory by {result.stdout.strip()} MB"
