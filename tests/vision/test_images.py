"""load_rgb on a zoo of files a real photo folder contains.  Every image here is generated in tmp_path.

Contract: anything decodable comes back as an upright RGB image; anything else raises ImageError naming the file
and the reason, never another exception type.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clfkit.errors import ClfError, ImageError
from clfkit.vision.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, is_hidden, is_image_name, load_rgb, to_rgb

from helpers import draw_image

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    return tuple(int(v) for v in image.getpixel(xy))  # type: ignore[union-attr]


def assert_close(actual, expected, tol: int = 0) -> None:
    assert all(abs(a - e) <= tol for a, e in zip(actual, expected)), f"{actual} != {expected} (tol {tol})"


def assert_rgb(image: Image.Image, size: tuple[int, int]) -> None:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    assert image.size == size
    np.asarray(image)  # pixels are loaded and readable after the file is closed


# --- valid formats -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ext, tol", [
    ("JPEG", "jpg", 40), ("PNG", "png", 0), ("BMP", "bmp", 0), ("WEBP", "webp", 40), ("TIFF", "tif", 0),
    ("GIF", "gif", 60), ("JPEG", "JPEG", 40), ("PNG", "PNG", 0),
])
def test_common_formats_load_as_rgb(tmp_path, fmt, ext, tol):
    original = draw_image(1, (50, 30))
    path = tmp_path / f"photo.{ext}"
    original.save(path, fmt, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    image = load_rgb(path)
    assert_rgb(image, (50, 30))
    diff = np.abs(np.asarray(image, np.int16) - np.asarray(original, np.int16))
    assert diff.mean() <= tol / 4 and np.median(diff) <= tol


def test_str_path_bytes_and_file_object_give_the_same_pixels(tmp_path):
    path = tmp_path / "a.png"
    draw_image(2).save(path)
    from_path = np.asarray(load_rgb(path))
    assert np.array_equal(np.asarray(load_rgb(str(path))), from_path)
    assert np.array_equal(np.asarray(load_rgb(path.read_bytes())), from_path)
    assert np.array_equal(np.asarray(load_rgb(bytearray(path.read_bytes()))), from_path)
    with open(path, "rb") as fh:
        assert np.array_equal(np.asarray(load_rgb(fh)), from_path)
    assert np.array_equal(np.asarray(load_rgb(io.BytesIO(path.read_bytes()))), from_path)


def _open_handles(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path)) if fds.is_dir() else 0


@pytest.mark.parametrize("name", ["a.jpg", "a.png", "a.gif", "a.tif"])
def test_file_is_closed_and_pixels_kept_after_loading(tmp_path, name):
    # Loading thousands of photos must not leak file handles, and the image must not need the file any more.
    path = tmp_path / name
    draw_image(3).save(path)
    image = load_rgb(path)
    assert _open_handles(path) == 0
    os.remove(path)
    assert np.asarray(image).shape == (40, 48, 3)


def test_draft_decodes_large_jpeg_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    draw_image(4, (800, 600)).save(path, quality=90)
    full = load_rgb(path)
    fast = load_rgb(path, draft=100)
    assert full.size == (800, 600)
    assert fast.mode == "RGB"
    assert min(fast.size) >= 100 and fast.width < 800
    assert fast.width / fast.height == pytest.approx(800 / 600, rel=0.02)


# --- transparency and unusual modes --------------------------------------------------------------------------

def test_rgba_png_is_composited_on_white(tmp_path):
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., :3] = (0, 0, 0)  # black colour everywhere ...
    rgba[:, :10, 3] = 0  # ... fully transparent on the left half
    rgba[:, 10:15, 3] = 255  # opaque
    rgba[:, 15:, 3] = 128  # half transparent
    path = tmp_path / "cutout.png"
    Image.fromarray(rgba, "RGBA").save(path)
    image = load_rgb(path)
    assert_rgb(image, (20, 10))
    assert pixel(image, (2, 5)) == WHITE
    assert pixel(image, (12, 5)) == BLACK
    assert_close(pixel(image, (17, 5)), (127, 127, 127), tol=2)


def test_la_png_is_composited_on_white(tmp_path):
    la = np.zeros((8, 8, 2), np.uint8)
    la[:, :4, 1] = 0
    la[:, 4:, 1] = 255
    path = tmp_path / "la.png"
    Image.fromarray(la, "LA").save(path)
    image = load_rgb(path)
    assert_rgb(image, (8, 8))
    assert pixel(image, (1, 1)) == WHITE
    assert pixel(image, (6, 1)) == BLACK


def test_palette_png_with_transparency_is_composited_on_white(tmp_path):
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * (256 * 3 - 6))
    for x in range(4, 8):
        for y in range(8):
            pal.putpixel((x, y), 1)
    path = tmp_path / "pal.png"
    pal.save(path, transparency=0)
    assert Image.open(path).mode == "P"
    image = load_rgb(path)
    assert_rgb(image, (8, 8))
    assert pixel(image, (1, 1)) == WHITE  # palette index 0 is transparent black → white
    assert pixel(image, (6, 1)) == RED


def test_palette_gif_without_transparency_keeps_colours(tmp_path):
    pal = Image.new("P", (8, 8), 0)
    pal.putpalette([0, 0, 255] + [0] * 765)
    path = tmp_path / "pal.gif"
    pal.save(path)
    assert pixel(load_rgb(path), (3, 3)) == BLUE


def test_16bit_grayscale_png_is_scaled_not_clipped(tmp_path):
    grey = np.array([[0, 65535, 32896, 257 * 200]], np.uint16)
    path = tmp_path / "scan16.png"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode.startswith("I;16")
    image = load_rgb(path)
    assert_rgb(image, (4, 1))
    assert pixel(image, (0, 0)) == BLACK
    assert pixel(image, (1, 0)) == WHITE
    assert_close(pixel(image, (2, 0)), (128, 128, 128), tol=1)  # mid grey, NOT clipped to 255
    assert pixel(image, (3, 0)) == (200, 200, 200)


def test_dark_16bit_png_stays_dark(tmp_path):
    # 16-bit levels are 0..65535 whatever the content: a nearly black scan must not turn bright
    # because none of its pixels happens to exceed 255.
    grey = np.full((4, 4), 200, np.uint16)
    grey[0, 0] = 0
    path = tmp_path / "dark16.png"
    Image.fromarray(grey).save(path)
    image = load_rgb(path)
    assert max(pixel(image, (2, 2))) <= 1
    assert pixel(image, (0, 0)) == BLACK


def test_mode_i_tiff_with_16bit_values(tmp_path):
    grey = np.array([[0, 65535, 32896]], np.int32)
    path = tmp_path / "int32.tif"
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == "I"
    image = load_rgb(path)
    assert_rgb(image, (3, 1))
    assert [pixel(image, (x, 0))[0] for x in range(3)] == [0, 255, 128]


def test_mode_i_with_8bit_values_is_kept(tmp_path):
    path = tmp_path / "int32_8bit.tif"
    Image.fromarray(np.array([[0, 100, 255]], np.int32)).save(path)
    image = load_rgb(path)
    assert [pixel(image, (x, 0))[0] for x in range(3)] == [0, 100, 255]


def test_mode_f_tiff_with_unit_range(tmp_path):
    path = tmp_path / "float.tif"
    Image.fromarray(np.array([[0.0, 0.5, 1.0]], np.float32)).save(path)
    assert Image.open(path).mode == "F"
    image = load_rgb(path)
    assert_rgb(image, (3, 1))
    assert [pixel(image, (x, 0))[0] for x in range(3)] == [0, 128, 255]


def test_integer_levels_zero_and_one_stay_dark():
    # Only float data is read as 0..1; integer grey levels 0 and 1 are nearly black, not a white mask.
    image = to_rgb(Image.fromarray(np.array([[0, 1]], np.int32)))
    assert [pixel(image, (x, 0))[0] for x in range(2)] == [0, 1]


def test_mode_f_with_nan_and_wide_range_does_not_crash():
    arr = np.array([[np.nan, -10.0, 0.0, 1000.0]], np.float32)
    image = to_rgb(Image.fromarray(arr, "F"))
    values = [pixel(image, (x, 0))[0] for x in range(4)]
    assert values[1] == 0 and values[3] == 255  # stretched min..max
    assert values[1] <= values[2] <= values[3]


def test_cmyk_jpeg(tmp_path):
    path = tmp_path / "print.jpg"
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(path, quality=95)  # pure red in print colours
    assert Image.open(path).mode == "CMYK"
    image = load_rgb(path)
    assert_rgb(image, (16, 16))
    assert_close(pixel(image, (8, 8)), RED, tol=20)


def test_ycbcr_image_converts_to_rgb():
    original = Image.new("RGB", (6, 6), (30, 160, 220))
    image = to_rgb(original.convert("YCbCr"))
    assert image.mode == "RGB"
    assert_close(pixel(image, (3, 3)), (30, 160, 220), tol=3)


def test_1bit_image(tmp_path):
    bw = Image.new("1", (10, 6), 0)
    bw.putpixel((7, 3), 1)
    path = tmp_path / "fax.png"
    bw.save(path)
    image = load_rgb(path)
    assert_rgb(image, (10, 6))
    assert pixel(image, (0, 0)) == BLACK and pixel(image, (7, 3)) == WHITE


def test_grayscale_jpeg(tmp_path):
    path = tmp_path / "grey.jpg"
    Image.new("L", (12, 9), 90).save(path, quality=95)
    image = load_rgb(path)
    assert_rgb(image, (12, 9))
    assert_close(pixel(image, (5, 5)), (90, 90, 90), tol=2)


def test_rgb_input_to_to_rgb_is_returned_unchanged():
    image = draw_image(5)
    assert to_rgb(image) is image


# --- EXIF orientation ----------------------------------------------------------------------------------------
# Stored image: 60 wide x 40 high, blue, with a red block at its top-left and a green block at its top-right.
# For each EXIF orientation: where those stored corners must appear in the upright image.
_EXIF_CORNERS = {
    1: ("top_left", "top_right"),
    2: ("top_right", "top_left"),  # mirrored horizontally
    3: ("bottom_right", "bottom_left"),  # rotated 180
    4: ("bottom_left", "bottom_right"),  # mirrored vertically
    5: ("top_left", "bottom_left"),  # transposed (mirrored along the main diagonal)
    6: ("top_right", "bottom_right"),  # camera held rotated: display turned 90 degrees clockwise
    7: ("bottom_right", "top_right"),  # transverse
    8: ("bottom_left", "top_left"),  # display turned 90 degrees counter-clockwise
}


def _corner_xy(image: Image.Image, where: str) -> tuple[int, int]:
    x = 4 if where.endswith("left") else image.width - 5
    y = 4 if where.startswith("top") else image.height - 5
    return x, y


@pytest.mark.parametrize("orientation", sorted(_EXIF_CORNERS))
def test_exif_orientation_is_applied(tmp_path, orientation):
    stored = Image.new("RGB", (60, 40), BLUE)
    stored.paste(RED, (0, 0, 12, 12))
    stored.paste(GREEN, (48, 0, 60, 12))
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"phone_{orientation}.jpg"
    stored.save(path, "JPEG", exif=exif, quality=95)

    image = load_rgb(path)
    assert image.mode == "RGB"
    assert image.size == ((40, 60) if orientation >= 5 else (60, 40))
    red_at, green_at = _EXIF_CORNERS[orientation]
    assert_close(pixel(image, _corner_xy(image, red_at)), RED, tol=40)
    assert_close(pixel(image, _corner_xy(image, green_at)), GREEN, tol=40)
    other = {"top_left", "top_right", "bottom_left", "bottom_right"} - {red_at, green_at}
    for where in other:
        assert_close(pixel(image, _corner_xy(image, where)), BLUE, tol=40)


# --- multi-frame ---------------------------------------------------------------------------------------------

def test_animated_gif_gives_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), c) for c in (RED, GREEN, BLUE)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    image = load_rgb(path)
    assert_rgb(image, (10, 10))
    assert_close(pixel(image, (5, 5)), RED, tol=10)


def test_multipage_tiff_gives_the_first_page(tmp_path):
    pages = [Image.new("RGB", (12, 8), GREEN), Image.new("RGB", (30, 30), BLUE)]
    path = tmp_path / "pages.tiff"
    pages[0].save(path, save_all=True, append_images=pages[1:])
    assert Image.open(path).n_frames == 2
    image = load_rgb(path)
    assert_rgb(image, (12, 8))
    assert pixel(image, (5, 5)) == GREEN


# --- broken files --------------------------------------------------------------------------------------------

def _valid_jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    draw_image(7, (64, 64)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png_with_header_size(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR chunk is rewritten (with a correct CRC) to claim width x height pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), RED).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _make_broken(tmp_path: Path, kind: str) -> Path:
    if kind == "truncated_jpeg":
        path = tmp_path / "half.jpg"
        data = _valid_jpeg_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "truncated_png":
        path = tmp_path / "half.png"
        buf = io.BytesIO()
        draw_image(8, (64, 64)).save(buf, "PNG")
        path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    elif kind == "zero_bytes":
        path = tmp_path / "empty.jpg"
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path = tmp_path / "noise.jpg"
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    elif kind == "html":
        path = tmp_path / "download.png"
        path.write_text("<!DOCTYPE html><html><body>403 Forbidden</body></html>\n")
    elif kind == "jpeg_header_only":
        path = tmp_path / "header.jpg"
        path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00")
    elif kind == "directory":
        path = tmp_path / "x.jpg"
        path.mkdir()
    elif kind == "missing":
        path = tmp_path / "gone.jpg"
    elif kind == "dangling_symlink":
        path = tmp_path / "link.jpg"
        os.symlink(tmp_path / "does_not_exist.jpg", path)
    elif kind == "symlink_loop":
        path = tmp_path / "loop_a.jpg"
        os.symlink(tmp_path / "loop_b.jpg", path)
        os.symlink(path, tmp_path / "loop_b.jpg")
    elif kind == "self_symlink":
        path = tmp_path / "self.jpg"
        os.symlink(path, path)
    elif kind == "png_bomb":
        path = tmp_path / "bomb.png"
        path.write_bytes(_png_with_header_size(60000, 60000))
    elif kind == "png_over_limit":
        path = tmp_path / "large.png"  # 144 MP: over our limit, under Pillow's own error threshold
        path.write_bytes(_png_with_header_size(12000, 12000))
    else:  # pragma: no cover
        raise AssertionError(kind)
    return path


@pytest.mark.parametrize("kind, reason", [
    ("truncated_jpeg", "truncated"),
    ("truncated_png", "truncated"),
    ("zero_bytes", "empty"),
    ("random_bytes", "not an image"),
    ("html", "not an image"),
    ("jpeg_header_only", ""),
    ("directory", "directory"),
    ("missing", "not found"),
    ("dangling_symlink", "broken symbolic link"),
    ("symlink_loop", "cannot open"),
    ("self_symlink", "cannot open"),
    ("png_bomb", "decompression bomb"),
    ("png_over_limit", "120,000,000-pixel limit"),
])
def test_broken_files_raise_image_error_naming_file_and_reason(tmp_path, kind, reason):
    path = _make_broken(tmp_path, kind)
    with pytest.raises(ImageError) as info:
        load_rgb(path)
    err = info.value
    assert isinstance(err, ClfError)
    assert str(path) in str(err)
    assert err.path == str(path)
    assert err.reason and err.reason in str(err)
    assert reason.lower() in err.reason.lower()


@pytest.mark.parametrize("kind", ["truncated_jpeg", "random_bytes", "html", "png_bomb"])
def test_broken_bytes_raise_image_error(tmp_path, kind):
    data = _make_broken(tmp_path, kind).read_bytes()
    with pytest.raises(ImageError, match="<bytes>"):
        load_rgb(data)


def test_broken_open_file_names_the_file(tmp_path):
    path = _make_broken(tmp_path, "html")
    with open(path, "rb") as fh, pytest.raises(ImageError, match="not an image") as info:
        load_rgb(fh)
    assert str(path) in str(info.value)


def test_errors_name_the_folder_too(tmp_path):
    # Two classes often hold files with the same name: the message must say which one is broken.
    path = tmp_path / "kayak" / "IMG_0001.jpg"
    path.parent.mkdir()
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="kayak"):
        load_rgb(path)
    with pytest.raises(ImageError, match="kayak"):
        load_rgb(str(path))


def test_empty_bytes_raise_image_error():
    with pytest.raises(ImageError, match="empty"):
        load_rgb(b"")


def test_max_pixels_is_respected(tmp_path):
    path = tmp_path / "a.png"
    draw_image(9, (100, 100)).save(path)
    assert load_rgb(path, max_pixels=10_000).size == (100, 100)
    with pytest.raises(ImageError, match="100x100"):
        load_rgb(path, max_pixels=9_999)
    assert DEFAULT_MAX_PIXELS >= 100_000_000  # a 100-megapixel photo is still accepted


# --- file names ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", [
    "my boat photo.jpg",
    "it's \"quoted\".jpg",
    "bateau à voile ⛵ 船.jpg",
    "line\nbreak.jpg",
    "$(touch x).jpg",
    "`touch x`.jpg",
    "; touch x;.jpg",
    "-rf.jpg",
])
def test_odd_file_names_load_and_run_nothing(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    draw_image(10).save(path, "JPEG")
    image = load_rgb(path)
    assert_rgb(image, (48, 40))
    assert not (tmp_path / "x").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# --- names ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ext", IMAGE_EXTENSIONS)
def test_is_image_name_accepts_every_extension_in_any_case(ext):
    for variant in (ext, ext.upper(), ext[:2].upper() + ext[2:]):
        assert is_image_name(f"photo{variant}")
        assert is_image_name(f"my.holiday photo{variant}")


def test_listed_extensions_cover_the_usual_formats():
    assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"} <= set(IMAGE_EXTENSIONS)


@pytest.mark.parametrize("name", [
    ".DS_Store", "._x.jpg", "._IMG_0001.JPG", ".hidden.png", "notes.txt", "photo.jpg.txt", "photo", "jpg",
    "Thumbs.db", "desktop.ini", "archive.zip", "photo.heic.part",
])
def test_is_image_name_rejects_clutter(name):
    assert not is_image_name(name)


@pytest.mark.parametrize("name, hidden", [
    (".DS_Store", True), ("._x.jpg", True), (".git", True), ("Thumbs.db", True), ("thumbs.db", True),
    ("desktop.ini", True), ("__MACOSX", True), ("x.jpg", False), ("my.photo.jpg", False), ("cat", False),
    ("_underscore.jpg", False),
])
def test_is_hidden(name, hidden):
    assert is_hidden(name) is hidden
