"""Real full and read-only filesystems for the "disk full / read-only output" tests.

A small tmpfs is mounted inside the test's temporary folder (needs root, as in CI here; skipped elsewhere), so
the commands hit the real ENOSPC and EROFS errors from the kernel rather than a patched ``open``.  The
``full_disk`` and ``readonly_dir`` fixtures (tests/conftest.py) mount them with :func:`mounted_tmpfs`; this
module holds that and the plain helpers the tests import by name.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

FULL = "No space left on device"
READ_ONLY = "Read-only file system"
REASONS = {"full_disk": FULL, "readonly_dir": READ_ONLY}


@contextmanager
def mounted_tmpfs(path: Path, size: str, readonly: bool) -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` for the duration of the block (skips the test without root/mount)."""
    if os.name != "posix" or (hasattr(os, "geteuid") and os.geteuid() != 0):
        pytest.skip("mounting a tmpfs for a full or read-only disk needs root on Linux")
    path.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if readonly else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "clfkit-test", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'mount failed'}); needs root on Linux")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def leftovers(folder: Path) -> list[str]:
    """Every entry under ``folder`` (hidden temporaries included), relative, sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def no_temporaries(folder: Path) -> list[str]:
    """:func:`leftovers`, asserting that no hidden temporary file was left behind."""
    left = leftovers(folder)
    assert not [name for name in left if Path(name).name.startswith(".") or name.endswith(".tmp")], left
    return left


def fill(folder: Path, leave: int = 2048) -> None:
    """Leave only ``leave`` bytes free on the filesystem of ``folder``."""
    free = shutil.disk_usage(folder).free
    (folder / "filler.bin").write_bytes(b"\0" * max(0, free - leave))
