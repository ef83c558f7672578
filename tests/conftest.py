"""Fixtures for every folder: tiny generated image folders, the real boats photos when present, the tiny
ONNX models and export run that several folders share, no_shell, and the full/read-only disks.

Tests use these by parameter name only (never import them).  The plain helpers live in helper modules that
tests import by name: helpers.py (images, the torch blocker, one_error_line, ...), zoo_files.py,
fs_helpers.py, hostile_files.py, tiny_onnx.py and export_run.py.  Folder-only fixtures live in that folder's
conftest.py (bench/, serve/, train/).  Torch is imported only inside the fixtures that need it.
"""
from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from fs_helpers import mounted_tmpfs
from helpers import BOATS, make_labelled_folder, torch_threads

if TYPE_CHECKING:
    from export_run import TinyRun
    from tiny_onnx import TinyModels


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_boats = pytest.mark.skip(reason=f"real boats photos not found at {BOATS}")
    skip_gpu = pytest.mark.skip(reason="no CUDA device")
    has_cuda = None
    for item in items:
        if "integration" in item.keywords and not BOATS.is_dir():
            item.add_marker(skip_boats)
        if "gpu" in item.keywords:
            if has_cuda is None:
                try:
                    import torch

                    has_cuda = torch.cuda.is_available()
                except Exception:  # noqa: BLE001 - no torch means no GPU tests
                    has_cuda = False
            if not has_cuda:
                item.add_marker(skip_gpu)


_MEASUREMENTS: list[str] = []


@pytest.fixture
def report_measurement():
    """Record a line (a throughput, a latency) for the end of the test run: shown, never asserted, because
    this machine's cores are shared."""
    return _MEASUREMENTS.append


def pytest_terminal_summary(terminalreporter) -> None:
    if _MEASUREMENTS:
        terminalreporter.section("measurements (reported, not asserted)")
        for line in _MEASUREMENTS:
            terminalreporter.write_line(line)


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """Three classes of 10, 7 and 4 small JPEGs."""
    return make_labelled_folder(tmp_path / "images", {"cat": 10, "dog": 7, "owl": 4})


@pytest.fixture
def boats_dir() -> Path:
    if not BOATS.is_dir():
        pytest.skip(f"real boats photos not found at {BOATS}")
    return BOATS


# --- the bad-input zoo (zoo_files.py) ----------------------------------------------------------------------
@pytest.fixture
def no_shell(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail the test if anything starts a shell (``os.system``, ``os.popen`` or ``subprocess`` with
    ``shell=True``) while the command runs: file names must only ever be arguments, never shell text."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a shell was started: {args!r}")

    real_init = subprocess.Popen.__init__

    def popen_init(self: subprocess.Popen, *args: object, **kwargs: object) -> None:
        if kwargs.get("shell"):
            refuse(*args)
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "system", refuse)
    monkeypatch.setattr(os, "popen", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", popen_init)
    yield


# --- full and read-only disks (fs_helpers.py) --------------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    """A folder on a 64 KiB filesystem: small writes succeed, anything bigger fails with ENOSPC."""
    with mounted_tmpfs(tmp_path / "full", "64k", readonly=False) as path:
        yield path


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on a read-only filesystem (root ignores chmod, so a read-only mount is the real test)."""
    with mounted_tmpfs(tmp_path / "readonly", "1m", readonly=True) as path:
        yield path


# --- PyTorch on one thread ---------------------------------------------------------------------------------
@pytest.fixture
def one_thread() -> Iterator[None]:
    """PyTorch on one thread for the test (see helpers.torch_threads), restored afterwards."""
    with torch_threads(1):
        yield


# --- the tiny ONNX models of the runtime, clf-infer and serve tests (tiny_onnx.py) --------------------------
@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """TinyNet exported once per session: float32_nchw and uint8_nhwc (--embed-preprocess) ONNX files."""
    from tiny_onnx import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_unknown_class(tiny: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with classes ("cat", "unknown", "owl"): "unknown" is also --reject-below's marker."""
    from tiny_onnx import export_with_classes

    return export_with_classes(tiny.model, tmp_path_factory.mktemp("unknown-class"), ("cat", "unknown", "owl"))


# --- the tiny clf-train-style run of the export, clf-export and ONNX-metadata tests (export_run.py) ---------
@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """data/{train,val} and run/model.pt (timm test_efficientnet, closed-form head), built once per session."""
    from export_run import build_tiny_run

    with torch_threads(1):
        return build_tiny_run(tmp_path_factory.mktemp("export-run"))


@pytest.fixture(scope="session")
def exported(tiny_run: TinyRun, tmp_path_factory: pytest.TempPathFactory):
    """``export_checkpoint`` run once with every variant: (ExportResult, ExportResult with embed-preprocess)."""
    from export_run import export_variants

    out = tmp_path_factory.mktemp("exported")
    with torch_threads(1):
        return export_variants(tiny_run, out)
