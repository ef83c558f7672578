"""Finetune-mode data loading: what each batch holds, and the one-image last batch that BatchNorm cannot train on."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import preprocess
from clfkit.spec import ModelSpec
from clfkit.data.layout import read_split_folders
from clfkit.train.distributed import DistInfo
from clfkit.train.finetune import make_loader

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)

SPEC = ModelSpec(class_names=("a", "b", "c"), input_size=32, resize_size=36)
CPU = torch.device("cpu")


def _loader(samples, *, train: bool, batch_size: int, info: DistInfo = DistInfo()):
    return make_loader(samples, SPEC, train=train, batch_size=batch_size, workers=0, seed=0, info=info, device=CPU)


def test_train_batches_are_augmented_images_with_labels_and_indices(tiny_data: Path) -> None:
    samples = read_split_folders(tiny_data).splits["train"]  # 18 images
    batches = list(_loader(samples, train=True, batch_size=8))
    assert [len(b[1]) for b in batches] == [8, 8, 2]
    images, labels, index = batches[0]
    assert images.shape == (8, 3, 32, 32) and images.dtype == torch.float32
    assert all(samples[i].label == y for i, y in zip(index.tolist(), labels.tolist()))
    assert sorted(i for b in batches for i in b[2].tolist()) == list(range(18))


def test_eval_batches_use_the_deployed_preprocessing(tiny_data: Path) -> None:
    samples = read_split_folders(tiny_data).splits["val"]
    images, labels, index = next(iter(_loader(samples, train=False, batch_size=4)))
    assert index.tolist() == [0, 1, 2, 3]  # in order, not shuffled
    expected = np.stack([preprocess(load_rgb(samples[i].path), SPEC) for i in range(4)])
    np.testing.assert_array_equal(images.numpy(), expected)


@pytest.mark.parametrize("batch_size, sizes", [(17, [17]), (6, [6, 6, 6]), (4, [4, 4, 4, 4, 2])])
def test_a_last_training_batch_of_one_image_is_dropped(tiny_data: Path, batch_size: int, sizes: list[int]) -> None:
    """18 images in batches of 17 would end with a batch of 1: at 32 px resnet10t's last BatchNorm sees a 1x1
    map of one sample and PyTorch refuses to train on it.  That batch (only that one) is dropped."""
    samples = read_split_folders(tiny_data).splits["train"]
    assert [len(b[1]) for b in _loader(samples, train=True, batch_size=batch_size)] == sizes
    val = [len(b[1]) for b in _loader(samples, train=False, batch_size=batch_size)]
    assert sum(val) == 18  # evaluation never drops anything


def test_each_rank_drops_its_own_one_image_batch_together(tiny_data: Path) -> None:
    samples = read_split_folders(tiny_data).splits["train"]  # 9 a rank; batches of 4 would end with 1
    shards = [list(_loader(samples, train=True, batch_size=4, info=DistInfo(rank=r, world_size=2)))
              for r in (0, 1)]
    assert [[len(b[1]) for b in shard] for shard in shards] == [[4, 4], [4, 4]]  # same step count: no DDP hang
    seen = [{i for b in shard for i in b[2].tolist()} for shard in shards]
    assert not seen[0] & seen[1]


def test_training_on_the_last_batch_does_not_crash(tiny_data: Path) -> None:
    """The real failure: one finetune epoch where --batch-size leaves a single image for the last step."""
    from clfkit.train.finetune import finetune_epoch
    from clfkit.train.loop import make_criterion, make_optimizer
    from clfkit.models.classifier import build_classifier

    model, _ = build_classifier("timm:resnet10t", 3, pretrained=False)
    samples = read_split_folders(tiny_data).splits["train"]
    optimizer = make_optimizer([(model.parameters(), 1.0)], "adamw", 1e-3, 0.0)
    seen: list[int] = []
    stats = finetune_epoch(model, _loader(samples, train=True, batch_size=17), optimizer, make_criterion(None, 0.0),
                           epoch=0, epochs=1, base_lr=1e-3, warmup=0.0, device=CPU, precision="fp32", scaler=None,
                           info=DistInfo(), progress=lambda n: None, seen=seen)
    assert len(seen) == 17 and np.isfinite(stats["train_loss"])
