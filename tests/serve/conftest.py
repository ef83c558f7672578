"""Fixtures of the serve tests (the tiny ONNX model ``tiny`` comes from tests/conftest.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_labelled_folder


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    """Nine small JPEGs (cat, dog, owl × 3) and a PNG, sorted by path, of different sizes."""
    root = make_labelled_folder(tmp_path / "photos", {"cat": 3, "dog": 3, "owl": 3}, size=(52, 41))
    make_labelled_folder(tmp_path / "photos", {"png": 1}, size=(37, 60), fmt="PNG", seed=5)
    return sorted(p for p in root.rglob("*") if p.is_file())
