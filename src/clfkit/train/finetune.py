"""``--mode finetune``: the whole network trains on augmented images (the GPU path; slow on a CPU).

Training images go through the one training augmentation (:data:`clfkit.vision.augment.TRAIN`: random resized
crop, flip, rotation, colour jitter — the same views head mode caches); evaluation uses
:func:`clfkit.vision.preprocess.preprocess`, the same code the exported model is served with.
"""
from __future__ import annotations

import random
import time
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from clfkit.data.layout import Sample
from clfkit.errors import ImageError
from clfkit.spec import ModelSpec
from clfkit.train.device import autocast
from clfkit.train.distributed import DistInfo, all_reduce_sum, sync_buffers
from clfkit.train.loop import lr_at, set_lr
from clfkit.vision.augment import TRAIN, augment
from clfkit.vision.images import load_rgb
from clfkit.vision.preprocess import normalize, preprocess

__all__ = ["train_transform", "ImageDataset", "make_loader", "finetune_epoch", "evaluate_loader"]


def train_transform(spec: ModelSpec) -> Callable[[Image.Image], torch.Tensor]:
    """RGB image → an augmented, normalized (3, S, S) tensor.  The view's parameters come from torch's random
    generator, which the DataLoader seeds per worker and epoch, so a run is reproducible for a given seed."""
    def transform(image: Image.Image) -> torch.Tensor:
        rng = random.Random(int(torch.randint(0, 2**62, ())))
        view = np.asarray(augment(image, spec, rng, TRAIN).convert("RGB"), dtype=np.uint8)
        return torch.from_numpy(normalize(view, spec))

    return transform


class ImageDataset(Dataset):
    """(tensor, label) pairs; a file that fails to load yields None and is dropped by ``collate``."""

    def __init__(self, samples: Sequence[Sample], transform: Callable) -> None:
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        sample = self.samples[index]
        try:
            image = load_rgb(sample.path)
        except ImageError:
            return None
        return self.transform(image), sample.label, index


def _eval_transform(spec: ModelSpec) -> Callable:
    return lambda image: torch.from_numpy(preprocess(image, spec))


def collate(batch):
    batch = [b for b in batch if b is not None]
    if not batch:
        return None
    images, labels, index = zip(*batch)
    return torch.stack(images), torch.tensor(labels), torch.tensor(index)


def make_loader(samples: Sequence[Sample], spec: ModelSpec, *, train: bool, batch_size: int, workers: int,
                seed: int, info: DistInfo, device: torch.device) -> DataLoader:
    dataset = ImageDataset(samples, train_transform(spec) if train else _eval_transform(spec))
    sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=train, seed=seed,
                                 drop_last=False) if info.enabled else None
    generator = torch.Generator().manual_seed(seed)
    # A last training batch of ONE image cannot train BatchNorm when the final feature map is 1x1 (small
    # --input-size): PyTorch raises.  Drop just that batch (a different image each epoch, the order is shuffled);
    # every rank has the same shard length, so under torchrun they all drop it together.
    per_rank = len(sampler) if sampler is not None else len(dataset)
    drop_last = train and per_rank > 1 and per_rank % batch_size == 1
    return DataLoader(dataset, batch_size=batch_size, shuffle=train and sampler is None, sampler=sampler,
                      num_workers=workers, collate_fn=collate, pin_memory=device.type == "cuda",
                      persistent_workers=False, generator=generator, drop_last=drop_last)


def finetune_epoch(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, criterion: nn.Module, *,
                   epoch: int, epochs: int, base_lr: float, warmup: float, device: torch.device, precision: str,
                   scaler: torch.amp.GradScaler | None, info: DistInfo, progress: Callable[[int], None],
                   seen: list[int] | None = None) -> dict[str, float]:
    model.train()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    steps = max(1, len(loader))
    total_loss = correct = count = 0.0
    start = time.perf_counter()
    for step, batch in enumerate(loader):
        if batch is None:
            continue
        images, labels, index = batch
        if seen is not None:
            seen.extend(index.tolist())
        images = images.to(device, non_blocking=True)
        if device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        labels = labels.to(device, non_blocking=True)
        set_lr(optimizer, lr_at(epoch + step / steps, base_lr, epochs, warmup))
        with autocast(device, precision):
            logits = model(images)
            loss = criterion(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total_loss += loss.item() * len(labels)
        correct += (logits.argmax(1) == labels).sum().item()
        count += len(labels)
        progress(len(labels))
    sync_buffers(model, info)  # the same BatchNorm statistics on every rank before validation and saving
    total_loss, correct, count = all_reduce_sum([total_loss, correct, count], info, device)
    return {"train_loss": total_loss / max(count, 1), "train_acc": correct / max(count, 1),
            "seconds": time.perf_counter() - start, "lr": optimizer.param_groups[-1]["lr"]}


@torch.no_grad()
def evaluate_loader(model: nn.Module, loader: DataLoader, device: torch.device, num_classes: int,
                    info: DistInfo) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(loss, accuracy, logits (N, C), labels (N,)) over a loader, in float32 and eval mode.

    Under torchrun each rank evaluates its shard and the pieces are gathered, so every rank gets the same
    numbers (DistributedSampler pads with a few repeats; they are removed by index).
    """
    from clfkit.train.distributed import gather_objects

    model.eval()
    out_logits, out_labels, out_index = [], [], []
    for batch in loader:
        if batch is None:
            continue
        images, labels, index = batch
        logits = model(images.to(device)).float().cpu()
        out_logits.append(logits)
        out_labels.append(labels)
        out_index.append(index)
    logits = torch.cat(out_logits) if out_logits else torch.zeros((0, num_classes))
    labels = torch.cat(out_labels) if out_labels else torch.zeros((0,), dtype=torch.long)
    index = torch.cat(out_index) if out_index else torch.zeros((0,), dtype=torch.long)
    parts = gather_objects((logits.numpy(), labels.numpy(), index.numpy()), info)
    all_logits = np.concatenate([p[0] for p in parts])
    all_labels = np.concatenate([p[1] for p in parts])
    all_index = np.concatenate([p[2] for p in parts])
    _, first = np.unique(all_index, return_index=True)  # drop sampler padding, order by sample index
    all_logits, all_labels = all_logits[first], all_labels[first]
    if len(all_labels) == 0:
        return float("nan"), float("nan"), all_logits, all_labels
    t_logits, t_labels = torch.from_numpy(all_logits), torch.from_numpy(all_labels)
    loss = nn.functional.cross_entropy(t_logits, t_labels).item()
    acc = (t_logits.argmax(1) == t_labels).float().mean().item()
    return loss, acc, all_logits, all_labels
