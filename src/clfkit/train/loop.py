"""Epoch-level training pieces shared by both modes: optimizer, schedule, loss, one epoch, evaluation.

The learning rate is a pure function of (epoch, fraction of epoch), so a resumed run follows exactly the
schedule of an uninterrupted one without storing scheduler state.
"""
from __future__ import annotations

import math
import time
from typing import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from clfkit.errors import ConfigError

__all__ = ["lr_at", "set_lr", "make_optimizer", "class_weights", "make_criterion", "head_epoch", "evaluate_head",
           "warm_start_head", "EarlyStopping"]


def lr_at(epoch: float, base_lr: float, epochs: int, warmup: float = 0.0) -> float:
    """Linear warm-up for ``warmup`` epochs, then cosine decay to 1 % of ``base_lr`` at ``epochs``."""
    if warmup > 0 and epoch < warmup:
        return base_lr * (epoch + 1e-3) / warmup
    progress = min(1.0, (epoch - warmup) / max(1e-9, epochs - warmup))
    return base_lr * (0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def make_optimizer(groups: Sequence[tuple[Iterable[nn.Parameter], float]], name: str, lr: float,
                   weight_decay: float) -> torch.optim.Optimizer:
    """``groups`` = (params, lr_scale) pairs, e.g. the backbone at 0.1x and the head at 1x."""
    param_groups = [{"params": [p for p in params if p.requires_grad], "lr": lr * scale, "lr_scale": scale}
                    for params, scale in groups]
    param_groups = [g for g in param_groups if g["params"]]
    if name == "adamw":
        return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(param_groups, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    raise ConfigError(f"--optimizer {name!r} is not supported")


def class_weights(train_counts: Sequence[int], mode: str) -> torch.Tensor | None:
    """'auto': inverse-frequency weights, n / (C * n_c), so each class carries equal total weight."""
    if mode == "none":
        return None
    counts = np.asarray(train_counts, np.float64)
    weights = counts.sum() / (len(counts) * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def make_criterion(weights: torch.Tensor | None, label_smoothing: float) -> nn.CrossEntropyLoss:
    return nn.CrossEntropyLoss(weight=weights, label_smoothing=label_smoothing)


def head_epoch(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, optimizer: torch.optim.Optimizer,
               criterion: nn.Module, *, batch_size: int, epoch: int, epochs: int, base_lr: float, warmup: float,
               seed: int) -> dict[str, float]:
    """One pass over cached features (N, F) in a shuffled order that depends only on (seed, epoch)."""
    head.train()
    n = feats.shape[0]
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(n, generator=generator)
    steps = max(1, math.ceil(n / batch_size))
    total_loss, correct, start = 0.0, 0, time.perf_counter()
    for step in range(steps):
        idx = order[step * batch_size:(step + 1) * batch_size]
        set_lr(optimizer, lr_at(epoch + step / steps, base_lr, epochs, warmup))
        logits = head(feats[idx])
        loss = criterion(logits, labels[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total_loss += loss.item() * len(idx)
        correct += (logits.argmax(1) == labels[idx]).sum().item()
    return {"train_loss": total_loss / n, "train_acc": correct / n, "seconds": time.perf_counter() - start,
            "lr": optimizer.param_groups[-1]["lr"]}


@torch.no_grad()
def evaluate_head(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """(plain cross-entropy, accuracy, logits) of the head on (N, F) features, in eval mode."""
    head.eval()
    logits = head(feats)
    loss = nn.functional.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    return loss, acc, logits


def warm_start_head(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, val_feats: torch.Tensor,
                    val_labels: torch.Tensor, criterion: nn.Module, *, optimizer: str = "adamw", seed: int = 0,
                    epochs: int = 30, patience: int = 5, lr: float = 1e-3) -> dict[str, float]:
    """Train ``head`` alone on frozen features (N, F) before the backbone unfreezes, keeping the epoch with the
    lowest validation loss: gradients from a random head would wreck pretrained blocks in the first steps."""
    opt = make_optimizer([(head.parameters(), 1.0)], optimizer, lr, 1e-2)
    early = EarlyStopping(patience)
    best = {k: v.detach().clone() for k, v in head.state_dict().items()}
    for epoch in range(epochs):
        head_epoch(head, feats, labels, opt, criterion, batch_size=256, epoch=epoch, epochs=epochs, base_lr=lr,
                   warmup=0.0, seed=seed)
        val_loss, _, _ = evaluate_head(head, val_feats, val_labels)
        if early.update(val_loss, epoch + 1):
            best = {k: v.detach().clone() for k, v in head.state_dict().items()}
        if early.should_stop:
            break
    head.load_state_dict(best)
    val_loss, val_acc, _ = evaluate_head(head, val_feats, val_labels)
    return {"val_loss": val_loss, "val_acc": val_acc, "epochs": early.best_epoch}


class EarlyStopping:
    """Stop when validation loss has not improved for ``patience`` epochs (0 = never stop early)."""

    def __init__(self, patience: int, min_delta: float = 1e-4, best: float = math.inf, stale: int = 0,
                 best_epoch: int = -1) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best, self.stale, self.best_epoch = best, stale, best_epoch

    def update(self, value: float, epoch: int) -> bool:
        """Record an epoch's validation loss; True when it is the best so far."""
        if value < self.best - self.min_delta:
            self.best, self.stale, self.best_epoch = value, 0, epoch
            return True
        self.stale += 1
        return False

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.stale >= self.patience

    def state(self) -> dict[str, float]:
        return {"best": self.best, "stale": self.stale, "best_epoch": self.best_epoch}
