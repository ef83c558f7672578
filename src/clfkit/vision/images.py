"""Image intake: any file a real photo folder contains → an RGB PIL image, or one ImageError.

Real folders hold PNG cut-outs with alpha, 16-bit scans, CMYK JPEGs from print workflows, phone photos with
an EXIF rotation, animated GIFs, truncated downloads and ``.DS_Store`` files.  Every path through the toolkit
(split, training, export verification, inference, serving) opens images with :func:`load_rgb`, so they all
see the same pixels and fail the same way.  No torch import.
"""
from __future__ import annotations

import io
import os
import struct
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from clfkit.errors import ImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "DEFAULT_MAX_PIXELS",
    "is_image_name",
    "is_hidden",
    "load_rgb",
    "read_image_bytes",
    "to_rgb",
]

# One list, used by every folder scan.  Compared lower-cased, so ".JPG" and ".Jpeg" count.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# A decoded image over this many pixels is refused before its pixels are allocated (decompression bombs:
# a 60000x60000 PNG is a few KB on disk and 10 GB in memory).  Large enough for 100-megapixel photos.
DEFAULT_MAX_PIXELS = 120_000_000
_HIDDEN_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}

Source = Union[str, os.PathLike, bytes, BinaryIO]


def is_hidden(name: str) -> bool:
    """True for OS clutter that is never data: dot files (``.DS_Store``, ``._x``), Thumbs.db, __MACOSX."""
    return name.startswith(".") or name.lower() in _HIDDEN_NAMES


def is_image_name(name: str) -> bool:
    """True when a file name has an accepted image extension (any case) and is not hidden."""
    return not is_hidden(name) and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _scale_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Map integer or float grey levels to 0..255 by their nominal range, never by clipping.

    16-bit data (0..65535) is divided by 257 so white stays white; floats in [0, 1] are multiplied by 255;
    anything outside those nominal ranges is stretched min..max.
    """
    # Decide by the *decoded* dtype (I;16 → uint16, F → float32): a dark 16-bit scan whose levels all happen
    # to be <= 255 is still 16-bit data and must stay dark.
    kind, itemsize = arr.dtype.kind, arr.dtype.itemsize
    # Float files can hold any bit pattern: signalling NaNs warn on the cast, a range near the float64 limits
    # overflows hi - lo.  Both end as defined levels below (nan_to_num), so the warnings are only noise.
    with np.errstate(all="ignore"):
        arr = arr.astype(np.float64)
        finite = arr[np.isfinite(arr)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if kind == "u" and itemsize == 2:
            scaled = arr / 257.0
        elif lo >= 0 and hi <= 1.0 and kind == "f" and hi > 0:
            scaled = arr * 255.0
        elif lo >= 0 and hi <= 255:
            scaled = arr
        elif lo >= 0 and hi <= 65535:
            scaled = arr / 257.0
        else:
            scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(arr)
        scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
        return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any Pillow mode to RGB, compositing transparency onto white."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGB", rgba.size, (255, 255, 255))
        canvas.paste(rgba, mask=rgba.getchannel("A"))
        return canvas
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_to_uint8(np.asarray(image))
        return Image.fromarray(grey, mode="L").convert("RGB")
    # L, 1, P, CMYK, YCbCr, LAB, HSV: Pillow knows the conversion.
    return image.convert("RGB")


def _describe(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if isinstance(exc, UnidentifiedImageError):
        return "not an image Pillow can read (unknown format or not an image file)"
    if "truncated" in text.lower():
        return f"truncated or damaged image data ({text})"
    return f"cannot decode image ({type(exc).__name__}: {text})"


def _open_image_file(path: Path, name: str) -> BinaryIO:
    """``open(path, "rb")`` with the one reason per way a listed file can fail to be an openable image."""
    try:
        if path.is_dir():
            raise ImageError(name, "is a directory, not an image file")
        if path.stat().st_size == 0:
            raise ImageError(name, "empty file (0 bytes)")
        return open(path, "rb")
    except FileNotFoundError:
        reason = "broken symbolic link" if path.is_symlink() else "file not found (moved or deleted?)"
        raise ImageError(name, reason) from None
    except PermissionError:
        raise ImageError(name, "permission denied") from None
    except OSError as exc:  # symlink loops, name too long, I/O errors
        raise ImageError(name, f"cannot open file ({exc.strerror or exc})") from None


def read_image_bytes(path: str | os.PathLike) -> bytes:
    """The raw bytes of an image file, failing with the same :class:`ImageError` reasons as :func:`load_rgb`
    on that path; ``load_rgb(bytes)`` then decodes them to the same pixels (a cluster reads files in one task
    and decodes them in another)."""
    name = str(os.fspath(path))
    with _open_image_file(Path(path), name) as fh:
        try:
            return fh.read()
        except OSError as exc:  # an I/O error while reading (a network filesystem went away)
            raise ImageError(name, f"cannot read file ({exc.strerror or exc})") from None


def load_rgb(source: Source, *, max_pixels: int = DEFAULT_MAX_PIXELS, draft: int | None = None) -> Image.Image:
    """Decode one image fully and return it as an RGB image with its EXIF orientation applied.

    ``source`` is a path, raw bytes or a binary file object.  ``draft`` (JPEG only) lets libjpeg decode at
    1/2, 1/4 or 1/8 scale while keeping the shorter side >= ``draft`` pixels: much faster for large photos,
    at the cost of slightly different pixels than a full decode (``clf-infer --fast-decode``).

    Raises :class:`ImageError` naming the file and the reason for anything that is not a decodable image:
    missing, a directory, zero bytes, truncated, not an image, or over ``max_pixels`` (decompression bomb).
    """
    if isinstance(source, (bytes, bytearray)):
        name = "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        name = str(os.fspath(source))  # the full path: Path.name would drop the folder (the class)
    else:
        name = str(getattr(source, "name", source))
    fh: BinaryIO
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImageError(name, "empty file (0 bytes)")
        fh = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        fh = _open_image_file(Path(source), name)
    else:
        fh = source
    try:
        with warnings.catch_warnings():
            # Pillow warns (not raises) for images between MAX_IMAGE_PIXELS and twice that; we decide ourselves.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow also warns about damaged metadata it skips ("Corrupt EXIF data", "Truncated File Read") in
            # files that still decode: noise on every line of a batch log, and an exception under -W error.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(fh) as im:
                width, height = im.size
                if width <= 0 or height <= 0:
                    raise ImageError(name, f"image has no pixels ({width}x{height})")
                if width * height > max_pixels:
                    raise ImageError(
                        name,
                        f"image is {width}x{height} px, over the {max_pixels:,}-pixel limit "
                        "(refused as a possible decompression bomb)",
                    )
                if draft and im.format == "JPEG":
                    im.draft("RGB", (draft, draft))
                # Animated GIF / multi-page TIFF: Image.open is positioned on the first frame; load only it.
                im.load()
                oriented = ImageOps.exif_transpose(im) if im.getexif() else im
                rgb = to_rgb(oriented)
                if rgb is im:
                    rgb = im.copy()  # detach from the file before it is closed
                rgb.load()
                return rgb
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageError(name, f"refused as a possible decompression bomb ({exc})") from None
    except (OSError, SyntaxError, ValueError, TypeError, IndexError, KeyError, EOFError,
            AttributeError, ZeroDivisionError, RuntimeError, MemoryError, struct.error) as exc:
        raise ImageError(name, _describe(exc)) from None
    finally:
        if isinstance(source, (str, os.PathLike)):
            fh.close()

