"""The one-line error helpers: file names that cannot break a line, and the machine's OSErrors."""
from __future__ import annotations

import errno
import os

from clfkit.errors import ImageError, environment_error, first_line, printable


def test_printable_keeps_names_on_one_line_and_escapes_control_characters():
    assert printable("photos/ship 1 'x' é 船.jpg") == "photos/ship 1 'x' é 船.jpg"
    assert printable("a\nb\tc\x1b[31m.jpg") == "a\\nb\\tc\\x1b[31m.jpg"
    assert printable(os.fsdecode(b"caf\xe9.jpg")) == "caf\\udce9.jpg"


def test_image_errors_are_one_line_whatever_the_name():
    exc = ImageError("bad\nname.jpg", "truncated or damaged image data")
    assert str(exc) == "bad\\nname.jpg: truncated or damaged image data"
    assert exc.path == "bad\nname.jpg"  # the real name stays available


def test_environment_errors_are_one_line_and_other_os_errors_are_not():
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/out/model.onnx")
    assert environment_error(full) == ("/out/model.onnx: No space left on device (free some space or write "
                                       "somewhere else)")
    assert environment_error(OSError(errno.EROFS, os.strerror(errno.EROFS))) == "Read-only file system"
    assert environment_error(OSError(errno.EBADF, "bad file descriptor")) is None  # a bug: keep the traceback
    assert environment_error(ValueError("x")) is None
    assert first_line(RuntimeError("one\ntwo")) == "one"
