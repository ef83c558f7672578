"""A zoo of the files a real photo folder holds, written into a class-per-folder tree, for every command's
bad-input tests (a helper module, imported by name; nothing binary is committed).

``make_zoo(root)`` writes ``root/<class>/...`` and returns a :class:`Zoo` saying which files are *good* (every
command must process them), which are *bad* (every command must name each in exactly one clear line and go on)
and which must be *ignored* silently (OS clutter, a directory named ``x.jpg``, non-image files).

Names are part of the zoo: spaces, quotes, unicode, a newline and ``$(touch x)`` in good *and* bad files.  A
command shows a name with control characters escaped (a newline as the two characters ``\\n``, see
:func:`shown`), so one file is always one line.  :func:`snapshot` and the ``no_shell`` fixture (in
tests/conftest.py) check that nothing is written outside the output path and that no file name ever reaches a
shell.
"""
from __future__ import annotations

import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from clfkit.errors import printable

from helpers import draw_image

ZOO_CLASSES = ("cat", "dog", "owl")  # the class names of the export, infer and bench fixture models
# A good file with this name would run `touch x` if a name ever reached a shell: tests assert no `x` appears.
SHELL_NAME = "$(touch x).jpg"
# The one bad file with every awkward character: it must still be ONE line, with its name escaped.
BAD_WEIRD_NAME = "bad 'name'\n$(touch x).jpg"


@dataclass
class Zoo:
    root: Path
    classes: tuple[str, ...]
    good: list[Path] = field(default_factory=list)  # decodable images: every command must process each
    bad: list[Path] = field(default_factory=list)  # image names that do not decode: one clear line each
    ignored: list[Path] = field(default_factory=list)  # never mentioned, never processed

    def good_in(self, folder: Path) -> list[Path]:
        return [p for p in self.good if p.is_relative_to(folder)]


def shown(path: Path | str) -> str:
    """A name as the commands print it: non-printable characters (newline, tab, ESC) escaped, so one file
    is always one line and a name cannot move the terminal's cursor (pinned in tests/test_errors.py)."""
    return printable(path)


def _png_claiming(width: int, height: int) -> bytes:
    """A real 1x1 PNG whose IHDR says ``width`` x ``height`` (CRC fixed): a few bytes on disk, a decompression
    bomb for any decoder that trusts the header."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1), (255, 0, 0)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])) & 0xFFFFFFFF)
    return bytes(data)


def _jpeg_bytes(seed: int, kind: int, size: tuple[int, int] = (64, 48)) -> bytes:
    buf = io.BytesIO()
    draw_image(seed, size, kind=kind).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _good_files(kind: int, seed: int) -> dict[str, object]:
    """name → PIL image (saved with the format its extension says) or raw bytes, for one class."""
    img = draw_image(seed, (48, 40), kind=kind)
    rgba = np.dstack([np.asarray(img), np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1))])
    grey16 = np.asarray(img.convert("L"), np.uint16) * 257  # 16-bit range, same picture
    palette = img.quantize(16)
    palette.info["transparency"] = 0  # palette entry 0 is transparent
    frames = [draw_image(seed + 1 + i, (48, 40), kind=kind) for i in range(3)]
    return {
        "rgba.png": Image.fromarray(rgba, "RGBA"),
        "la.png": Image.fromarray(rgba, "RGBA").convert("LA"),
        "palette.png": palette,
        "grey16.png": Image.fromarray(grey16),  # mode I;16
        "cmyk.jpg": img.convert("CMYK"),
        "animated.gif": frames,
        "pages.tiff": frames[:2],
        "photo.webp": img,
        "photo.bmp": img,
        "one_pixel.png": img.resize((1, 1)),
    }


def _save(path: Path, item: object) -> None:
    if isinstance(item, bytes):
        path.write_bytes(item)
    elif isinstance(item, list):  # animated GIF / multi-page TIFF
        item[0].save(path, save_all=True, append_images=item[1:], duration=40, loop=0)
    elif path.suffix.lower() in (".jpg", ".webp"):
        item.save(path, quality=90)
    else:
        item.save(path)


def make_zoo(root: Path, per_class: int = 4, classes: tuple[str, ...] = ZOO_CLASSES) -> Zoo:
    """Write the zoo into ``root/<class>/`` (see the module docstring).  Each class gets ``per_class`` plain
    JPEGs plus its share of the unusual good files, so the tree also splits and trains; the bad files and
    the clutter are spread over the classes.  About 45 small files; only the 10000x10 one is wide."""
    root = Path(root)
    zoo = Zoo(root=root, classes=tuple(classes))
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        items: dict[str, object] = {f"img_{i:02d}.jpg": _jpeg_bytes(1000 * k + i, k) for i in range(per_class)}
        # Each class gets every third unusual file, so each keeps enough good images of its colour.
        unusual = _good_files(k, 500 + 100 * k)
        items.update({n: v for j, (n, v) in enumerate(sorted(unusual.items())) if j % len(classes) == k})
        for path_name, item in items.items():
            _save(folder / path_name, item)
            zoo.good.append(folder / path_name)

    first, second, third = (root / c for c in (classes * 3)[:3])
    # EXIF orientations 1-8: phone photos stored sideways or mirrored.
    for orientation in range(1, 9):
        folder = (first, second, third)[orientation % 3]
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / f"exif_{orientation}.jpg"
        draw_image(700 + orientation, (48, 36), kind=classes.index(folder.name)).save(path, exif=exif, quality=90)
        zoo.good.append(path)
    # 10000x10: a panorama strip (resizing its short side up makes a very wide image; it must still work).
    strip = np.tile(np.asarray(draw_image(800, (100, 10), kind=0)), (1, 100, 1))
    Image.fromarray(strip, "RGB").save(first / "strip_10000x10.png")
    zoo.good.append(first / "strip_10000x10.png")
    # Names a shell would interpret, and names that are awkward in CSV, JSON and terminals.
    for j, name in enumerate(["with space.jpg", "quote's \"double\".jpg", "ünïcødé 猫.jpg", "new\nline.jpg",
                              SHELL_NAME, "tab\tand; touch y `touch y`.JPG"]):
        folder = (first, second, third)[j % 3]
        (folder / name).write_bytes(_jpeg_bytes(900 + j, classes.index(folder.name)))
        zoo.good.append(folder / name)

    # Bad: image names whose content does not decode, and links that lead nowhere.
    valid = _jpeg_bytes(999, 0, (96, 96))
    bad: dict[Path, bytes] = {
        first / "truncated.jpg": valid[: len(valid) // 2],
        first / "zero_bytes.jpg": b"",
        second / "random_bytes.jpg": np.random.default_rng(0).integers(0, 256, 2048, np.uint8).tobytes(),
        second / "page.png": b"<!DOCTYPE html><html><body>403 Forbidden</body></html>\n",
        third / "bomb_60000x60000.png": _png_claiming(60000, 60000),
        third / BAD_WEIRD_NAME: valid[: len(valid) // 3],
    }
    for path, data in bad.items():
        path.write_bytes(data)
        zoo.bad.append(path)
    os.symlink(first / "nowhere.jpg", second / "dangling.jpg")
    os.symlink(third / "loop_b.jpg", third / "loop_a.jpg")
    os.symlink(third / "loop_a.jpg", third / "loop_b.jpg")
    zoo.bad += [second / "dangling.jpg", third / "loop_a.jpg", third / "loop_b.jpg"]

    # Ignored: OS clutter, a directory with an image name, files that are not images by extension.
    (first / "x.jpg").mkdir()
    clutter: dict[Path, bytes] = {
        root / ".DS_Store": b"\0\0\0\1Bud1",
        first / ".DS_Store": b"\0\0\0\1Bud1",
        first / "._img_00.jpg": b"\0\5\26\7\0\2\0\0Mac OS X        ",  # AppleDouble resource fork
        second / "Thumbs.db": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
        second / "notes.txt": b"taken in 2019\n",
        root / "__MACOSX" / first.name / "._img_00.jpg": b"\0\5\26\7",
        root / "__MACOSX" / first.name / "img_00.jpg": valid,
        third / "__MACOSX" / "img.jpg": valid,
    }
    for path, data in clutter.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    zoo.ignored += [first / "x.jpg", *clutter]
    return zoo


def snapshot(*folders: Path) -> dict[str, tuple[str, int]]:
    """Every entry under ``folders`` (links not followed) → (kind, size): compare before/after a command."""
    entries: dict[str, tuple[str, int]] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                st = path.lstat()
                kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
                entries[str(path)] = (kind, 0 if kind == "dir" else st.st_size)
    return entries


def assert_written_only_under(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]],
                              *outputs: Path) -> None:
    """Nothing appeared, vanished or changed outside ``outputs`` (and no ``x`` from ``$(touch x)`` anywhere)."""
    def outside(path: str) -> bool:
        return not any(Path(path).is_relative_to(o) for o in outputs)

    changed = sorted(p for p in set(before) | set(after) if outside(p) and before.get(p) != after.get(p))
    assert changed == [], f"written outside {[str(o) for o in outputs]}: {changed}"
    touched = [p for p in after if Path(p).name in ("x", "y")]
    assert touched == [], f"a file name reached a shell: {touched}"


def lines_naming(text: str, path: Path) -> list[str]:
    """The lines of ``text`` that name ``path`` (as shown, escaped) by its class folder and name."""
    name = shown(Path(path.parent.name) / path.name)
    return [line for line in text.splitlines() if name in line]


def assert_one_line_per_bad_file(text: str, zoo: Zoo) -> None:
    """Each bad file is named on exactly one line of ``text``, and no traceback is there."""
    for path in zoo.bad:
        found = lines_naming(text, path)
        assert len(found) == 1, f"{shown(path.name)!r}: expected one line, got {found!r}\n{text}"
    assert "Traceback" not in text


def assert_not_named(text: str, paths: list[Path]) -> None:
    """None of ``paths`` (full paths, as shown) appears in ``text``: good files are not reported as problems,
    ignored files are not mentioned at all."""
    named = [shown(p) for p in paths if shown(p) in text]
    assert named == [], f"named but should not be: {named}\n{text}"
