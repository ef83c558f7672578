"""Fixtures of the clf-train tests: one PyTorch thread per module, a tiny weights file and a tiny data split.

``one_torch_thread`` is module-scoped but NOT autouse: the modules that train say so with
``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` (test_train_config.py, which trains nothing,
does not).  The constants and config builders are in train_helpers.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from helpers import torch_threads
from train_helpers import TINY, split_data


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Every test module that uses this trains on ONE PyTorch thread (restored afterwards).

    The tiny models gain nothing from two threads, and on a busy 2-core machine OpenMP's barrier waits made a
    resnet10t training step at 32 px ~15x slower with two threads than with one.  Subprocesses get
    OMP_NUM_THREADS=1 for the same reason.
    """
    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A resnet10t backbone state dict (random init, seeded) to pass as --weights."""
    import torch

    from clfkit.models.registry import create_backbone

    torch.manual_seed(0)
    backbone, _, _ = create_backbone(TINY, pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "resnet10t.pth"
    torch.save(backbone.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DATA/{train,val,test} with 3 classes of 10 images (6/2/2 each); read-only for the tests."""
    return split_data(tmp_path_factory.mktemp("tiny"))
