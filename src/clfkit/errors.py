"""One family of user-facing errors.

Every error a user can cause (a bad flag, a corrupt image, a foreign checkpoint) is a ``ClfError``.  The CLI
turns it into one line on stderr and a non-zero exit code; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

__all__ = ["first_line", "ClfError", "ConfigError", "SpecError", "ImageError", "DataError", "CheckpointError", "ModelError"]


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
        super().__init__(f"{self.path}: {reason}")


class DataError(ClfError):
    """A dataset folder does not have the expected layout or content."""


class CheckpointError(ClfError):
    """A checkpoint is not a clfkit checkpoint, is corrupt, or disagrees with its spec."""


class ModelError(ClfError):
    """An ONNX model cannot be used (not ONNX, no clfkit metadata, wrong shape, unsafe external data)."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message (library errors can span pages), for one-line user errors."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
