"""Folder scanning: a class-per-folder tree → (file, class) pairs, in a deterministic order.

The class of an image is the immediate subfolder of the root it sits under (files nested deeper belong to
that class too).  Loose files, hidden entries (``.DS_Store``, ``._x``, ``__MACOSX``) and non-image files are
ignored; class order is sorted so every run on the same folder gives the same class indices.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from clfkit.errors import DataError
from clfkit.vision.images import is_hidden, is_image_name

__all__ = ["LabelledFolder", "iter_image_files", "scan_labelled", "iter_labelled", "class_dirs"]


@dataclass(frozen=True)
class LabelledFolder:
    """The result of scanning ``root``: images per class, plus what was found but not used."""

    root: Path
    classes: tuple[str, ...]  # sorted, including empty ones
    files: dict[str, tuple[Path, ...]]  # class → sorted image paths
    empty_classes: tuple[str, ...] = ()
    ignored: tuple[Path, ...] = field(default=())  # loose files at the root

    @property
    def num_images(self) -> int:
        return sum(len(v) for v in self.files.values())

    def items(self) -> Iterator[tuple[Path, str]]:
        for name in self.classes:
            for path in self.files[name]:
                yield path, name


def iter_image_files(folder: Path, recursive: bool = True) -> Iterator[Path]:
    """Image files under ``folder`` in sorted order; hidden entries skipped; symlinked dirs not followed
    (a symlink loop can never hang a scan).  Walks lazily so a huge folder is never listed twice in memory."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return
    subdirs = []
    for entry in entries:
        if is_hidden(entry.name):
            continue
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if is_dir:
            subdirs.append(entry)
        elif is_image_name(entry.name):
            yield Path(entry.path)
    if recursive:
        for entry in subdirs:
            yield from iter_image_files(Path(entry.path), recursive=True)


def class_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(class folders, loose files) directly under ``root``, sorted, hidden entries dropped."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: folder not found")
    if not root.is_dir():
        raise DataError(f"{root}: is a file, expected a folder with one subfolder per class")
    dirs, loose = [], []
    for entry in sorted(os.scandir(root), key=lambda e: e.name):
        if is_hidden(entry.name):
            continue
        (dirs if entry.is_dir() else loose).append(Path(entry.path))
    return dirs, loose


def _require_classes(root: Path, dirs: list[Path]) -> None:
    if not dirs:
        raise DataError(
            f"{root}: no class folders found; expected {root}/<class name>/<images> "
            "(one subfolder per class)"
        )


def scan_labelled(root: Path) -> LabelledFolder:
    """Scan a class-per-folder tree.  Raises DataError when there is no class folder at all."""
    root = Path(root)
    dirs, loose = class_dirs(root)
    _require_classes(root, dirs)
    files = {d.name: tuple(iter_image_files(d)) for d in dirs}
    classes = tuple(sorted(files))
    empty = tuple(c for c in classes if not files[c])
    return LabelledFolder(root=root, classes=classes, files=files, empty_classes=empty, ignored=tuple(loose))


def iter_labelled(root: Path) -> tuple[tuple[str, ...], Iterator[tuple[Path, str]]]:
    """(class names, a lazy stream of (image path, class name)) for a class-per-folder tree.

    The streaming form of :func:`scan_labelled` for folders too big to list up front: the same classes and
    files in the same order, but no path is held once it has been consumed."""
    root = Path(root)
    dirs, _ = class_dirs(root)
    _require_classes(root, dirs)
    classes = tuple(sorted(d.name for d in dirs))

    def stream() -> Iterator[tuple[Path, str]]:
        for name in classes:
            for path in iter_image_files(root / name):
                yield path, name

    return classes, stream()
