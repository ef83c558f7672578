"""PATH arguments → image files, and whether the input is a labelled folder.  No torch import.

Rules (the same as every folder scan in clfkit):

* a folder yields its image files by extension (any case), sorted, hidden files skipped; sub-folders too
  unless ``recursive=False``;
* a glob (``'photos/*.jpg'``, ``'shots/**'``) yields the image files and folders it matches, sorted;
* a URI (``s3://bucket/photos/``, ``file:///mnt/photos``) is listed through pyarrow
  (:mod:`clfkit.runtime.uris`) by the same rules and yields URI strings;
* a file named explicitly is always tried, whatever its extension, and so is a path that does not exist: it
  becomes an error row ("file not found") rather than stopping the run.

Files are listed lazily, so a folder of a million photos is never held in memory.
"""
from __future__ import annotations

import difflib
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from clfkit.data.layout import class_folder_of
from clfkit.data.scan import class_dirs, iter_image_files
from clfkit.runtime.uris import is_uri, list_uri
from clfkit.vision.images import is_image_name

__all__ = ["expand_paths", "LabelledInput", "detect_labelled"]

_GLOB_CHARS = ("*", "?", "[")


def _has_glob(text: str) -> bool:
    return any(c in text for c in _GLOB_CHARS)


def expand_paths(args: Sequence[str | os.PathLike], recursive: bool = True,
                 log: Callable[[str], None] | None = None) -> Iterator[Path | str]:
    """Image files for PATH arguments (files, folders, globs, URIs), in argument order then sorted order."""
    for arg in args:
        if is_uri(arg):
            yield from list_uri(arg, recursive)
            continue
        path = Path(arg)
        if path.is_dir():
            yield from iter_image_files(path, recursive=recursive)
        elif path.exists() or path.is_symlink() or not _has_glob(os.fspath(arg)):
            yield path  # an explicit file; a missing one or a broken link becomes an error row
        else:
            matches = sorted(glob.glob(os.fspath(arg), recursive=recursive))
            if not matches and log:
                log(f"{arg}: the pattern matches no file")
            for match in matches:
                found = Path(match)
                if found.is_dir():
                    yield from iter_image_files(found, recursive=recursive)
                elif is_image_name(found.name):
                    yield found


@dataclass(frozen=True)
class LabelledInput:
    """A single folder argument whose sub-folders are (some of) the model's classes.

    The true label of an image is the sub-folder of ``root`` it sits under (deeper folders belong to it too,
    as everywhere: :func:`clfkit.data.layout.class_folder_of`).  Images in ``unknown`` folders and loose files at the root
    are predicted and written but have no label, so they are left out of the metrics."""

    root: Path
    known: tuple[str, ...]  # sub-folders named like a model class
    unknown: tuple[str, ...]  # sub-folders the model has no class for

    def label_of(self, path: str | os.PathLike) -> str | None:
        folder = class_folder_of(path, self.root)
        return folder if folder in self.known else None

    def folder_of(self, path: str | os.PathLike) -> str | None:
        """The sub-folder of ``root`` a file sits in (known or not); None for loose files."""
        return class_folder_of(path, self.root)

    def describe_unknown(self, class_names: Sequence[str]) -> list[str]:
        """One line per unknown folder, with the closest class name when one is close (a typo or case)."""
        lines = []
        for name in self.unknown:
            close = difflib.get_close_matches(name, list(class_names), n=1, cutoff=0.6)
            lower = [c for c in class_names if c.lower() == name.lower()]
            hint = lower or close
            lines.append(f"{self.root / name}: folder is not a class of the model; its images are predicted "
                         "but left out of the metrics" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        return lines


def detect_labelled(args: Sequence[str | os.PathLike], class_names: Sequence[str]) -> LabelledInput | None:
    """A :class:`LabelledInput` when ``args`` is one folder with at least one sub-folder named like a class."""
    if len(args) != 1 or not Path(args[0]).is_dir():
        return None
    root = Path(args[0])
    dirs, _ = class_dirs(root)
    names = [d.name for d in dirs]
    known = tuple(n for n in names if n in set(class_names))
    if not known:
        return None
    return LabelledInput(root=root, known=known, unknown=tuple(n for n in names if n not in set(class_names)))
