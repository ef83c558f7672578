"""Shared by the serve tests: the tiny ONNX model of tests/infer, photos as bytes, and odd uploads.

Imported by the test modules (no conftest here, as in tests/infer).  tests/infer is put on sys.path so the
one tiny model is exported once per session for both folders.
"""
from __future__ import annotations

import io
import struct
import sys
import zlib
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infer"))

from conftest import make_labelled_folder  # noqa: E402
from infer_fixtures import CLASSES, TinyModels, tiny  # noqa: E402,F401 - fixture re-exported

__all__ = ["CLASSES", "TinyModels", "tiny", "photos", "read_files", "bomb_png", "truncated_jpeg"]


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Nine small JPEGs (cat, dog, owl × 3) and a PNG, sorted by path, of different sizes."""
    root = make_labelled_folder(tmp_path / "photos", {"cat": 3, "dog": 3, "owl": 3}, size=(52, 41))
    make_labelled_folder(tmp_path / "photos", {"png": 1}, size=(37, 60), fmt="PNG", seed=5)
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_files(paths: list[Path]) -> list[tuple[str, bytes]]:
    return [(p.name if p.parent.name == "png" else f"{p.parent.name}-{p.name}", p.read_bytes()) for p in paths]


def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A ~100-byte PNG whose header claims width × height pixels (a decompression bomb; never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 4096))
            + chunk(b"IEND", b""))


def truncated_jpeg(data: bytes) -> bytes:
    return data[: len(data) // 2]


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
