"""Inputs named by URI (``s3://bucket/photos/``, ``gs://…``, ``file:///mnt/photos``): listed and read through
pyarrow's filesystems, so a cluster whose nodes share no disk reads the same objects.  No torch import.

pyarrow comes with the ``[ray]`` extra; each scheme needs what pyarrow needs for it (S3 and GCS are built into
pyarrow's wheels; credentials come from the usual environment).  The listing follows the folder rules of
:mod:`clfkit.runtime.sources`: image extensions in any case, hidden files and folders skipped, sorted.  A
URI's rows carry the URI itself as ``path``.
"""
from __future__ import annotations

import posixpath
from typing import Any, Iterator
from urllib.parse import quote

from clfkit.errors import ConfigError, ImageError
from clfkit.vision.images import is_hidden, is_image_name

__all__ = ["is_uri", "list_uri", "read_uri_bytes"]


def is_uri(text: object) -> bool:
    """True for ``scheme://…`` strings (a Windows drive ``C:\\`` is not a URI)."""
    return isinstance(text, str) and "://" in text and len(text.split("://", 1)[0]) > 1


def _filesystem(uri: str) -> tuple[Any, str, str]:
    """(pyarrow filesystem, path inside it, scheme) for ``uri``; ConfigError when it cannot be opened."""
    try:
        from pyarrow import fs
    except ImportError:
        raise ConfigError(f"{uri}: reading URIs needs pyarrow; pip install 'clfkit[ray]'") from None
    scheme = uri.split("://", 1)[0]
    try:
        filesystem, path = fs.FileSystem.from_uri(uri)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, … for a scheme it lacks
        raise ConfigError(f"{uri}: cannot open this URI ({type(exc).__name__}: {exc})") from None
    return filesystem, path, scheme


def list_uri(uri: str, recursive: bool = True) -> Iterator[str]:
    """The image objects under ``uri`` (a prefix or a single object) as URIs, sorted."""
    from pyarrow import fs

    filesystem, root, scheme = _filesystem(uri)
    try:
        info = filesystem.get_file_info(root)
        if info.type == fs.FileType.File:
            yield uri
            return
        if info.type == fs.FileType.NotFound:
            raise ConfigError(f"{uri}: not found")
        found = filesystem.get_file_info(fs.FileSelector(root, recursive=recursive, allow_not_found=True))
    except OSError as exc:
        raise ConfigError(f"{uri}: cannot list it ({exc})") from None
    names = []
    for entry in found:
        if entry.type != fs.FileType.File:
            continue
        relative = posixpath.relpath(entry.path, root) if root else entry.path
        parts = relative.split("/")
        if any(is_hidden(p) for p in parts[:-1]) or not is_image_name(parts[-1]):
            continue
        # the order of a folder scan (clfkit.data.scan.iter_image_files): a folder's own files, sorted, then
        # its sub-folders in sorted order
        names.append((tuple((1, p) for p in parts[:-1]) + ((0, parts[-1]),), entry.path))
    for _, path in sorted(names):
        # percent-encoded, as a URI must be: a name with a space, '#', '?', '%' or non-ASCII letters is read
        # back (FileSystem.from_uri decodes it) as the object it names
        yield f"{scheme}://{quote(path, safe='/')}"  # file:///a/b.jpg, s3://bucket/b%20c.jpg


def read_uri_bytes(uri: str) -> bytes:
    """The bytes of one object, or :class:`ImageError` with the reason (the row's ``error``)."""
    from pyarrow import fs

    try:
        filesystem, path, _ = _filesystem(uri)
    except ConfigError as exc:
        raise ImageError(uri, str(exc).split(": ", 1)[-1]) from None
    try:
        info = filesystem.get_file_info(path)
        if info.type == fs.FileType.NotFound:
            raise ImageError(uri, "file not found (moved or deleted?)")
        if info.type == fs.FileType.Directory:
            raise ImageError(uri, "is a directory, not an image file")
        with filesystem.open_input_stream(path) as fh:
            data = fh.read()
    except ImageError:
        raise
    except Exception as exc:  # noqa: BLE001 - network and permission errors come as several pyarrow types
        raise ImageError(uri, f"cannot read file ({type(exc).__name__}: {exc})") from None
    if not data:
        raise ImageError(uri, "empty file (0 bytes)")
    return data
