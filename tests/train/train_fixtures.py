"""Tiny data and fast models shared by the clf-train tests (a module, not a conftest: the root conftest is
imported by name elsewhere).

Fast models: head mode needs a *pretrained* backbone, so it uses either the packaged ``efficientnet_lite0``
(real ImageNet weights, offline) at 32 px, or ``timm:resnet10t`` with ``weights=`` a state dict saved from a
random-init model (a weights file means no download).  Finetune mode uses ``timm:resnet10t`` with
``pretrained=False`` at 32 px.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import make_labelled_folder, torch_threads

from clfkit.data.make_split import make_split
from clfkit.train.config import TrainConfig

TINY = "timm:resnet10t"
CLASSES = ("a", "b", "c")
IMAGE_SIZE = (48, 40)


def corrupt_jpeg(path: Path) -> Path:
    """A file that looks like a JPEG by name and magic bytes but cannot be decoded."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00garbage" * 8)
    return path


def split_data(root: Path, per_class: int = 10, classes: tuple[str, ...] = CLASSES, seed: int = 0) -> Path:
    """root/data/{train,val,test}/<class>/ split by clf-split from ``per_class`` generated images a class."""
    images = make_labelled_folder(root / "images", {c: per_class for c in classes}, size=IMAGE_SIZE, seed=seed)
    make_split(images, root / "data", progress=False)
    return root / "data"


def head_config(data: Path, out: Path, weights: Path, **options: Any) -> TrainConfig:
    """Head mode on the tiny random-init resnet10t loaded from a weights file (fast, offline)."""
    base = dict(data=data, out=out, mode="head", backbone=TINY, weights=weights, input_size=32, epochs=5,
                cache_views=2, workers=0, device="cpu", precision="fp32")
    return TrainConfig(**{**base, **options})


def finetune_config(data: Path, out: Path, **options: Any) -> TrainConfig:
    base = dict(data=data, out=out, mode="finetune", backbone=TINY, pretrained=False, input_size=32, epochs=2,
                batch_size=8, workers=0, device="cpu", precision="fp32")
    return TrainConfig(**{**base, **options})


def quiet(_msg: str) -> None:
    pass


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Every test module that imports this trains on ONE PyTorch thread (restored afterwards).

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
