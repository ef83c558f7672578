"""Tiny data and fast models shared by the clf-train tests: the constants and config builders they import by
name (the fixtures ``one_torch_thread``, ``tiny_weights`` and ``tiny_data`` are in tests/train/conftest.py).

Fast models: head mode needs a *pretrained* backbone, so it uses either the packaged ``efficientnet_lite0``
(real ImageNet weights, offline) at 32 px, or ``timm:resnet10t`` with ``weights=`` a state dict saved from a
random-init model (a weights file means no download).  Finetune mode uses ``timm:resnet10t`` with
``pretrained=False`` at 32 px.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import make_labelled_folder

from clfkit.data.make_split import make_split
from clfkit.train.config import TrainConfig

TINY = "timm:resnet10t"
CLASSES = ("a", "b", "c")
IMAGE_SIZE = (48, 40)


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
