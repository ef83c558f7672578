"""Plain helpers shared by the tests of every folder (imported by name: ``from helpers import ...``).

Fixtures live in the conftest.py files; this module holds the functions and constants the tests call
themselves.  Nothing binary is committed: every image a test needs is drawn here with Pillow.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BOATS = Path(os.environ.get("CLFKIT_BOATS", REPO.parent / "shared" / "data" / "boats"))


def draw_image(seed: int, size: tuple[int, int] = (48, 40), kind: int = 0) -> Image.Image:
    """A small RGB image whose colour pattern depends on ``kind`` (so a tiny model can learn classes)."""
    rng = np.random.default_rng(seed)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.zeros((h, w, 3), np.float64)
    base[..., kind % 3] = 160 + 80 * np.sin((xx + 3 * kind) / (3 + kind))
    base[..., (kind + 1) % 3] = 60 * (yy / max(h - 1, 1))
    noisy = base + rng.normal(0, 12, base.shape)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8), "RGB")


def make_labelled_folder(root: Path, classes: dict[str, int], size: tuple[int, int] = (48, 40),
                         fmt: str = "JPEG", seed: int = 0) -> Path:
    """root/<class>/img_XXX.jpg with ``classes[name]`` images each; returns root."""
    for k, (name, count) in enumerate(sorted(classes.items())):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            ext = "jpg" if fmt == "JPEG" else fmt.lower()
            draw_image(seed * 10_000 + k * 1000 + i, size, kind=k).save(folder / f"img_{i:03d}.{ext}", fmt)
    return root


def corrupt_jpeg(path: Path) -> Path:
    """A file that looks like a JPEG by name and magic bytes but cannot be decoded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00garbage" * 8)
    return path


_BLOCK_TORCH = """
import sys
class _Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "torchvision", "timm"}:
            raise ImportError("torch is blocked here (tried to import " + name + ")")
        return None
sys.meta_path.insert(0, _Blocker())
"""


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing torch, torchvision or timm fails.

    A subprocess keeps the test process's own modules untouched (re-importing clfkit in-process would create
    second copies of its exception classes)."""
    return subprocess.run([sys.executable, "-c", _BLOCK_TORCH + code], capture_output=True, text=True,
                          timeout=120)


_NO_HEAVY_MODULES = """
import sys as _sys
_heavy = sorted(m for m in _sys.modules if m.split(".")[0] in {"torch", "torchvision", "timm"})
assert not _heavy, _heavy
print("ok")
"""


def assert_runs_without_torch(code: str) -> None:
    """``code`` runs to the end under the torch blocker and leaves no torch, torchvision or timm module loaded
    (a lazy import inside a function only fails when it runs, so the code should exercise, not just import)."""
    result = run_without_torch(code + _NO_HEAVY_MODULES)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok"), result.stdout


def sigkill_when(command: list[str], ready: Callable[[], bool], *, cwd: Path, what: str,
                 env: dict[str, str] | None = None, timeout: float = 240, poll_s: float = 0.05) -> str:
    """Start ``command``, SIGKILL it as soon as ``ready()`` holds (wherever the process is at that moment) and
    return its output.  Fails if it ends by itself first (too fast to test a crash) or ``ready`` never holds."""
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            assert proc.poll() is None, f"the process ended before it could be killed: {proc.communicate()[0]!r}"
            assert time.monotonic() < deadline, f"{what} never happened"
            time.sleep(poll_s)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
    assert proc.returncode == -signal.SIGKILL, output
    return output


@contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """PyTorch on ``n`` threads inside the block, restored afterwards.

    Tiny test models gain nothing from two threads, and on a busy 2-core machine OpenMP's barrier waits made a
    48 px forward pass ~50x slower with two threads than with one.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_error_line(result, reason: str | None = None) -> str:
    """A click result that failed as a user error: exit 1, no traceback, exactly one ``Error:`` line (naming
    ``reason`` when given); returns that line."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert reason is None or reason in lines[0], result.output
    return lines[0]


def version1_spec(spec):
    """``spec`` as clfkit's first release wrote it: schema version 1, no ``temperature`` (an uncalibrated
    artifact), built from the JSON an old model.pt or ONNX file carries."""
    from clfkit.spec import ModelSpec

    data = {k: v for k, v in spec.to_dict().items() if k != "temperature"}
    return ModelSpec.from_dict({**data, "schema_version": 1})
