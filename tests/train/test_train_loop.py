"""Epoch-level pieces: the learning-rate schedule, early stopping, class weights and one head epoch."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from clfkit.errors import ConfigError
from clfkit.train import loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)


def test_lr_warms_up_linearly_then_decays_by_cosine_to_one_percent() -> None:
    base, epochs, warmup = 0.1, 10, 2.0
    ts = np.linspace(0, epochs, 201)
    lrs = [loop.lr_at(float(t), base, epochs, warmup) for t in ts]
    during = [lr for t, lr in zip(ts, lrs) if t < warmup]
    after = [lr for t, lr in zip(ts, lrs) if t >= warmup]
    assert 0 < during[0] < 0.01 * base  # starts near zero, never exactly zero (a step with lr 0 is wasted)
    assert all(b > a for a, b in zip(during, during[1:]))  # rising during warm-up
    assert loop.lr_at(warmup, base, epochs, warmup) == pytest.approx(base)  # peak when warm-up ends
    assert all(b <= a for a, b in zip(after, after[1:]))  # never rises again
    assert lrs[-1] == pytest.approx(0.01 * base)
    assert loop.lr_at(epochs + 5, base, epochs, warmup) == pytest.approx(0.01 * base)  # floor, not negative
    midpoint = warmup + (epochs - warmup) / 2
    assert loop.lr_at(midpoint, base, epochs, warmup) == pytest.approx(base * (0.01 + 0.99 * 0.5))


def test_lr_without_warmup_starts_at_base() -> None:
    assert loop.lr_at(0.0, 3e-3, 5) == pytest.approx(3e-3)
    assert loop.lr_at(5.0, 3e-3, 5) == pytest.approx(3e-5)


def test_set_lr_keeps_each_groups_scale() -> None:
    backbone, head = nn.Linear(2, 2), nn.Linear(2, 2)
    optimizer = loop.make_optimizer([(backbone.parameters(), 0.1), (head.parameters(), 1.0)], "adamw", 1.0, 0.0)
    loop.set_lr(optimizer, 0.5)
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([0.05, 0.5])


@pytest.mark.parametrize("name, cls", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD)])
def test_make_optimizer_skips_frozen_params(name: str, cls: type) -> None:
    frozen, trained = nn.Linear(2, 2), nn.Linear(2, 2)
    frozen.requires_grad_(False)
    optimizer = loop.make_optimizer([(frozen.parameters(), 0.1), (trained.parameters(), 1.0)], name, 1e-2, 0.0)
    assert isinstance(optimizer, cls)
    assert len(optimizer.param_groups) == 1 and len(optimizer.param_groups[0]["params"]) == 2
    with pytest.raises(ConfigError, match="--optimizer"):
        loop.make_optimizer([(trained.parameters(), 1.0)], "lion", 1e-2, 0.0)


def test_early_stopping_counts_stale_epochs() -> None:
    early = loop.EarlyStopping(patience=2)
    assert early.update(1.0, 1) is True and early.best_epoch == 1
    assert early.update(0.8, 2) is True and (early.best, early.stale) == (0.8, 0)
    assert early.update(0.79995, 3) is False  # below min_delta: not an improvement
    assert early.stale == 1 and not early.should_stop
    assert early.update(0.9, 4) is False and early.should_stop
    assert early.best_epoch == 2
    assert early.update(0.5, 5) is True and not early.should_stop  # an improvement resets the count


def test_early_stopping_state_restores() -> None:
    early = loop.EarlyStopping(patience=3)
    for epoch, value in enumerate([1.0, 0.5, 0.7, 0.8], start=1):
        early.update(value, epoch)
    restored = loop.EarlyStopping(3, **early.state())
    assert restored.state() == early.state() == {"best": 0.5, "stale": 2, "best_epoch": 2}
    assert restored.update(0.9, 5) is False and restored.should_stop


def test_patience_zero_never_stops() -> None:
    early = loop.EarlyStopping(patience=0)
    early.update(0.1, 1)
    for epoch in range(2, 100):
        early.update(1.0 + epoch, epoch)
        assert not early.should_stop
    assert early.best_epoch == 1


def test_auto_class_weights_give_each_class_equal_total_weight() -> None:
    counts = [30, 10, 5, 1]
    weights = loop.class_weights(counts, "auto")
    assert weights is not None and weights.dtype == torch.float32
    totals = weights.double() * torch.tensor(counts, dtype=torch.float64)
    torch.testing.assert_close(totals, torch.full((4,), sum(counts) / 4, dtype=torch.float64))
    assert weights[3] > weights[2] > weights[1] > weights[0]  # rarer class, bigger weight
    torch.testing.assert_close(loop.class_weights([7, 7, 7], "auto"), torch.ones(3))
    assert loop.class_weights(counts, "none") is None


def _toy(n_per_class: int = 40, dim: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Three well-separated Gaussian clusters: (N, F) features, (N,) labels."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=g) * 4
    labels = torch.arange(3).repeat_interleave(n_per_class)
    feats = centres[labels] + torch.randn(len(labels), dim, generator=g)
    return feats, labels


def _train(head: nn.Module, feats: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int) -> list[dict]:
    optimizer = loop.make_optimizer([(head.parameters(), 1.0)], "adamw", 0.05, 0.0)
    criterion = loop.make_criterion(loop.class_weights([40, 40, 40], "auto"), 0.0)
    return [loop.head_epoch(head, feats, labels, optimizer, criterion, batch_size=16, epoch=e, epochs=epochs,
                            base_lr=0.05, warmup=0.0, seed=seed) for e in range(epochs)]


def test_head_epoch_learns_a_separable_problem() -> None:
    feats, labels = _toy()
    torch.manual_seed(0)
    head = nn.Linear(8, 3)
    before, acc_before, _ = loop.evaluate_head(head, feats, labels)
    stats = _train(head, feats, labels, epochs=8, seed=0)
    after, acc, logits = loop.evaluate_head(head, feats, labels)
    assert after < 0.2 * before and acc == 1.0 and acc > acc_before
    assert logits.shape == (120, 3) and not head.training  # evaluate_head leaves the head in eval mode
    assert stats[-1]["train_loss"] < stats[0]["train_loss"]
    assert stats[-1]["lr"] == pytest.approx(0.05 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 7.875 / 8))))
    assert set(stats[0]) == {"train_loss", "train_acc", "seconds", "lr"}


def test_head_epoch_order_depends_only_on_seed_and_epoch() -> None:
    feats, labels = _toy()
    torch.manual_seed(0)
    init = nn.Linear(8, 3)
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        head = copy.deepcopy(init)
        torch.manual_seed(123 if name == "a" else 456)  # the global RNG must not matter
        runs[name] = (_train(head, feats, labels, epochs=2, seed=seed), head.state_dict())
    for key, value in runs["a"][1].items():
        assert torch.equal(value, runs["b"][1][key])
    assert [r["train_loss"] for r in runs["a"][0]] == [r["train_loss"] for r in runs["b"][0]]
    assert not torch.equal(runs["a"][1]["weight"], runs["c"][1]["weight"])  # another seed, another order
