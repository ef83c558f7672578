"""Property tests for load_rgb: whatever bytes arrive, the result is an RGB image or one ImageError.

Hypothesis draws the files: random bytes, random bytes behind a real format's magic number, valid images of
random sizes (1x1, panoramas) and Pillow modes saved in every format of IMAGE_EXTENSIONS that takes the mode,
with EXIF rotations and extra frames, and truncations of those files at random offsets.
"""
from __future__ import annotations

import io

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from clfkit.errors import ImageError
from clfkit.vision.images import load_rgb

# Each example is a small encode + decode; together the tests here stay well under 10 s on one core.
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Which of our formats (IMAGE_EXTENSIONS) Pillow can write each mode to; the formats convert where needed
# (an RGBA GIF is saved as P), so the reader sees what such an encoder really writes.
FORMATS_BY_MODE = {
    "1": ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"],
    "L": ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"],
    "LA": ["PNG", "GIF", "TIFF", "WEBP"],
    "P": ["PNG", "GIF", "BMP", "TIFF", "WEBP"],
    "PA": ["TIFF", "WEBP"],
    "RGB": ["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"],
    "RGBA": ["PNG", "GIF", "BMP", "TIFF", "WEBP"],
    "RGBX": ["JPEG", "TIFF", "WEBP"],
    "CMYK": ["JPEG", "TIFF", "WEBP"],
    "YCbCr": ["JPEG", "TIFF", "WEBP"],
    "LAB": ["TIFF", "WEBP"],
    "HSV": ["WEBP"],
    "I": ["GIF", "TIFF", "WEBP"],
    "I;16": ["PNG", "GIF", "TIFF", "WEBP"],
    "I;16B": ["PNG", "TIFF", "WEBP"],
    "F": ["GIF", "TIFF", "WEBP"],
}
MULTI_FRAME = {"PNG", "GIF", "TIFF", "WEBP"}  # formats with save_all (APNG, animated GIF/WebP, multi-page TIFF)
EXIF_FORMATS = {"PNG", "JPEG", "TIFF", "WEBP"}
MAGIC = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
         b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L"]


@st.composite
def sizes(draw) -> tuple[int, int]:
    """Mostly small sizes, with 1x1, single rows/columns and panoramas up to 1:2000 drawn often."""
    short = draw(st.integers(1, 12))
    long = draw(st.one_of(st.integers(short, 64), st.integers(100, 2000)))
    return (short, long) if draw(st.booleans()) else (long, short)


def make_image(mode: str, size: tuple[int, int], seed: int) -> Image.Image:
    """Random pixels in ``mode`` (F and I get any bit pattern: NaN, inf, negative, huge)."""
    rng = np.random.default_rng(seed)
    probe = Image.new(mode, (1, 1))
    nbytes = len(Image.new(mode, size).tobytes())
    image = Image.frombytes(mode, size, rng.bytes(nbytes))
    if probe.palette is not None:
        image.putpalette(rng.bytes(768), "RGB")
        if mode == "P" and rng.random() < 0.5:
            image.info["transparency"] = int(rng.integers(0, 256))
    return image


def encode(image: Image.Image, fmt: str, *, orientation: int = 1, frames: int = 1, seed: int = 0) -> bytes:
    buf = io.BytesIO()
    kwargs: dict = {}
    if orientation != 1 and fmt in EXIF_FORMATS:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    if frames > 1 and fmt in MULTI_FRAME:
        extra = [make_image(image.mode, image.size, seed + k) for k in range(1, frames)]
        kwargs.update(save_all=True, append_images=extra)
    if "transparency" in image.info and fmt in ("PNG", "GIF") and frames == 1:
        kwargs["transparency"] = image.info["transparency"]
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


@st.composite
def valid_files(draw) -> tuple[bytes, tuple[int, int], str, str, int]:
    mode = draw(st.sampled_from(sorted(FORMATS_BY_MODE)))
    fmt = draw(st.sampled_from(FORMATS_BY_MODE[mode]))
    size = draw(sizes())
    if fmt == "WEBP":
        size = (min(size[0], 1000), min(size[1], 1000))  # keep the slowest encoder quick
    orientation = draw(st.integers(1, 8)) if fmt in EXIF_FORMATS else 1
    frames = draw(st.integers(1, 3)) if fmt in MULTI_FRAME else 1
    seed = draw(st.integers(0, 2**32 - 1))
    data = encode(make_image(mode, size, seed), fmt, orientation=orientation, frames=frames, seed=seed)
    return data, size, mode, fmt, orientation


def assert_rgb(image: Image.Image) -> None:
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert image.width >= 1 and image.height >= 1
    pixels = np.asarray(image)
    assert pixels.shape == (image.height, image.width, 3) and pixels.dtype == np.uint8


def load_or_image_error(data: bytes, **kwargs) -> Image.Image | None:
    """load_rgb's result, or None when it raised ImageError; any other exception fails the test."""
    try:
        image = load_rgb(data, **kwargs)
    except ImageError as exc:
        assert exc.path == "<bytes>" and exc.reason and "\n" not in exc.reason
        return None
    assert_rgb(image)
    return image


@FAST
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\x00")
def test_random_bytes_are_an_image_or_an_image_error(data):
    load_or_image_error(data)


@FAST
@given(st.sampled_from(MAGIC), st.binary(max_size=2048))
def test_random_bytes_behind_a_real_magic_number_are_an_image_or_an_image_error(magic, tail):
    # A small pixel limit: random headers may claim any size, and the test must not allocate gigabytes.
    load_or_image_error(magic + tail, max_pixels=1_000_000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_files())
def test_every_valid_image_loads_as_upright_rgb_of_its_size(drawn):
    data, (width, height), mode, fmt, orientation = drawn
    image = load_rgb(data)
    assert_rgb(image)
    # EXIF orientations 5-8 rotate by 90 degrees: the upright image has the sides swapped.
    assert image.size == ((height, width) if orientation >= 5 else (width, height)), (mode, fmt, orientation)


@FAST
@given(st.sampled_from(["PNG", "BMP", "TIFF"]), sizes(), st.integers(0, 2**32 - 1))
def test_rgb_pixels_survive_lossless_formats_exactly(fmt, size, seed):
    original = make_image("RGB", size, seed)
    assert np.array_equal(np.asarray(load_rgb(encode(original, fmt))), np.asarray(original))


@FAST
@given(valid_files(), st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files_are_an_image_or_an_image_error(drawn, fraction):
    data = drawn[0]
    load_or_image_error(data[: int(len(data) * fraction)])


@FAST
@given(valid_files(), st.integers(0, 2**32 - 1))
def test_files_with_flipped_bytes_are_an_image_or_an_image_error(drawn, seed):
    data = bytearray(drawn[0])
    rng = np.random.default_rng(seed)
    for at in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
        data[at] ^= 1 << int(rng.integers(0, 8))
    load_or_image_error(bytes(data), max_pixels=1_000_000)
