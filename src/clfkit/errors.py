"""One family of user-facing errors.

Every error a user can cause (a bad flag, a corrupt image, a foreign checkpoint) is a ``ClfError``.  The CLI
turns it into one line on stderr and a non-zero exit code, and does the same for an ``OSError`` that comes
from the machine (disk full, read-only folder, no permission; :func:`environment_error`); anything else is a
bug and keeps its traceback.
"""
from __future__ import annotations

import errno
import os

__all__ = ["first_line", "printable", "environment_error", "ClfError", "ConfigError", "SpecError", "ImageError", "DataError",
           "CheckpointError", "ModelError", "OutputError"]


class ClfError(Exception):
    """Base class: the message is written for the user and names the file or flag and what to do."""


class ConfigError(ClfError, ValueError):
    """An option value is invalid; the message names the flag."""


class SpecError(ClfError, ValueError):
    """A ModelSpec is invalid, missing or from an unknown schema version."""


class ImageError(ClfError):
    """A file could not be turned into an RGB image (missing, empty, truncated, not an image, too large)."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{printable(self.path)}: {reason}")


class DataError(ClfError):
    """A dataset folder does not have the expected layout or content."""


class CheckpointError(ClfError):
    """A checkpoint is not a clfkit checkpoint, is corrupt, or disagrees with its spec."""


class ModelError(ClfError):
    """An ONNX model cannot be used (not ONNX, no clfkit metadata, wrong shape, unsafe external data)."""


class OutputError(ClfError):
    """An output cannot be written (disk full, read-only folder, no permission); nothing half-written is left
    where the finished file goes."""


# What a full disk, a read-only folder or missing permissions raise: the user's environment, not a bug.
_ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                       errno.ENAMETOOLONG, errno.EIO}


def environment_error(exc: BaseException) -> str | None:
    """One line for an OSError caused by the machine (disk full, read-only, permissions), else None."""
    if not isinstance(exc, OSError) or exc.errno not in _ENVIRONMENT_ERRNOS:
        return None
    where = f"{exc.filename}: " if exc.filename else ""
    hint = " (free some space or write somewhere else)" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{where}{exc.strerror or exc}{hint}"


def printable(text: object) -> str:
    """``text`` with non-printable characters escaped (newline → ``\\n``, ESC → ``\\x1b``; unicode letters kept).

    For file names in one-line messages: a name with a newline stays on its one line, and a name cannot send
    terminal escape sequences.  Names that are not valid UTF-8 (surrogate escapes) come out as ``\\udcXX``.
    """
    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for c in text)


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (library errors can span pages), for one-line user errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
