"""Plain helpers of the serve tests: photos as upload tuples and odd uploads (imported by name).

The fixtures the serve tests use are in conftest files: ``photos`` in tests/serve/conftest.py, the tiny ONNX
model ``tiny`` in tests/conftest.py (shared with the runtime and clf-infer tests; its constants are in
tests/tiny_onnx.py).
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path


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
