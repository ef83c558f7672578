"""The two training paths.  Both write model.pt when validation loss improves and last.pt after every epoch.

* ``run_head``: frozen backbone in eval mode (BatchNorm statistics never change), features cached once, the
  head trained on them — an epoch costs milliseconds.
* ``run_finetune``: the whole network on augmented images, DDP under torchrun, AMP, channels_last, a lower
  learning rate for the backbone than for the head.
"""
from __future__ import annotations

import copy
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from clfkit.artifacts.checkpoint import CHECKPOINT_VERSION, RESUME_FORMAT, read_cache, save_checkpoint, save_state
from clfkit.data.layout import SplitData
from clfkit.spec import ModelSpec
from clfkit.train import loop
from clfkit.train.config import TrainConfig
from clfkit.train.distributed import DistInfo, gather_objects
from clfkit.train.features import FeatureStats, extract_features, feature_cache_key
from clfkit.train.frozen_runtime import pooled_features_on_ort
from clfkit.train.report import write_history

__all__ = ["Outcome", "run_head", "run_finetune", "EXTRACT_BATCH"]

EXTRACT_BATCH = 64  # views per backbone forward pass when caching features (--batch-size is the head's)


@dataclass
class Outcome:
    history: list[dict[str, Any]]
    best_epoch: int
    metrics: dict[str, Any]
    test: tuple[np.ndarray, np.ndarray] | None = None  # (logits (N, C), labels (N,)) of the best model
    # the same on the validation split's center view, as deployed: what the temperature is fitted on
    val: tuple[np.ndarray, np.ndarray] | None = None
    seen_train_indices: list[int] = field(default_factory=list)
    # {"train": (N, F), "val": (N, F)}: the PRETRAINED backbone's center-view features in sample order, for the
    # label audit (clfkit.train.audit), where the mode has them for free; None: the audit computes them
    frozen: dict[str, np.ndarray] | None = None


def _save_epoch(run_dir: Path, *, model: torch.nn.Module, scope_state: dict, spec: ModelSpec,
                config: TrainConfig, optimizer: torch.optim.Optimizer, early: loop.EarlyStopping,
                history: list[dict[str, Any]], improved: bool, extra: dict[str, Any] | None = None) -> None:
    """model.pt when the epoch improved validation loss, then last.pt and history.csv (all atomic)."""
    row = history[-1]
    if improved:
        save_checkpoint(run_dir / "model.pt", model, spec, config=config.to_dict(),
                        metrics={"best_epoch": row["epoch"], "val_loss": row["val_loss"], "val_acc": row["val_acc"]})
    save_state({
        "format": RESUME_FORMAT, "format_version": CHECKPOINT_VERSION, "spec": spec.to_dict(),
        "arch": {"backbone": model.backbone_name, "head": model.head_kind}, "state_dict": scope_state,
        "optimizer": optimizer.state_dict(), "early": early.state(), "epoch": row["epoch"],
        "history": history, "seconds": sum(r["seconds"] for r in history), **(extra or {}),
    }, run_dir / "last.pt")
    write_history(run_dir, history, curves=False)


def _restore(resume_state: dict | None, optimizer: torch.optim.Optimizer, patience: int
             ) -> tuple[int, loop.EarlyStopping, list[dict[str, Any]]]:
    if resume_state is None:
        return 0, loop.EarlyStopping(patience), []
    optimizer.load_state_dict(resume_state["optimizer"])
    early = loop.EarlyStopping(patience, **resume_state["early"])
    return int(resume_state["epoch"]), early, list(resume_state["history"])


def _end_epoch(config: TrainConfig, early: loop.EarlyStopping) -> int:
    """Where the epoch loop ends: --epochs, unless a resumed run had already stopped early (then it is done)."""
    return 0 if early.should_stop else config.epochs


def _history_row(epoch: int, stats: dict[str, float], val_loss: float, val_acc: float) -> dict[str, Any]:
    """One row of history.csv (every mode writes the same columns)."""
    return {"epoch": epoch + 1, "train_loss": stats["train_loss"], "train_acc": stats["train_acc"],
            "val_loss": val_loss, "val_acc": val_acc, "lr": stats["lr"], "seconds": stats["seconds"]}


def _epoch_line(row: dict[str, Any], epochs: int | None = None) -> str:
    of = f"/{epochs}" if epochs else ""
    return (f"epoch {row['epoch']}{of}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.3f} | "
            f"val loss {row['val_loss']:.4f} acc {row['val_acc']:.3f} | {row['seconds']:.0f} s")


# ------------------------------------------------------------------------------------------------ head
def _features(config: TrainConfig, model: torch.nn.Module, spec: ModelSpec, data: SplitData, run_dir: Path,
              device: torch.device, precision: str, info: DistInfo, progress: bool, log: Callable[[str], None]
              ) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], dict[str, float]]:
    """{split: (features (N, V, F), labels (N,))} from the cache in RUN_DIR, or computed (sharded by rank); the
    timing of the backbone passes; and the runtime that made the features ("onnxruntime" or "torch")."""
    views = {s: (config.cache_views if s == "train" else 1) for s in data.splits}
    # On a CPU the frozen backbone runs on onnxruntime (float32, several times faster than PyTorch eager).
    runtime = "onnxruntime" if device.type == "cpu" else "torch"
    key = feature_cache_key(spec, {"backbone": config.backbone, "weights": str(config.weights or ""),
                                   "runtime": runtime}, data.splits, config.cache_views, config.seed, precision)
    cache = run_dir / "cache" / f"features-{key[:24]}.pt"
    stored = read_cache(cache, key, log, "feature cache")
    if stored is not None:
        log(f"using cached backbone features {cache}")
        ran = stored.get("runtime", runtime)
        return {s: (stored[s], stored[f"{s}_labels"]) for s in data.splits}, dict(stored["timing"]), ran
    forward = (pooled_features_on_ort(model, spec.input_size, log, "head features")
               if runtime == "onnxruntime" else None)
    ran = "onnxruntime" if forward is not None else "torch"
    out: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    timing: dict[str, float] = {}
    for split, samples in data.splits.items():
        stats = FeatureStats()
        shard = samples[info.rank::info.world_size]
        # Train views use the fast autocast precision; val/test are computed in float32, as deployed.
        feats, ok = extract_features(
            model, shard, spec, views=views[split], seed=config.seed, batch_size=EXTRACT_BATCH, device=device,
            precision=precision if split == "train" else "fp32", workers=config.workers,
            desc=f"{split} features ({views[split]} view{'s' * (views[split] > 1)})", progress=progress,
            stats=stats, forward=forward)
        parts = gather_objects((feats, ok), info)
        full = np.zeros((len(samples), views[split], feats.shape[-1]), np.float32)
        mask = np.zeros(len(samples), bool)
        for rank, (f, o) in enumerate(parts):
            full[rank::info.world_size] = f
            mask[rank::info.world_size] = o
        labels = np.array([s.label for s in samples], np.int64)
        out[split] = (torch.from_numpy(full[mask]), torch.from_numpy(labels[mask]))
        timing[f"{split}_seconds"] = stats.seconds
        if split == "train":
            timing["backbone_epoch_s"] = stats.seconds / views[split]
    if info.is_main:
        stored = {"key": key, "timing": timing, "runtime": ran}
        for split, (f, y) in out.items():
            stored[split], stored[f"{split}_labels"] = f, y
        save_state(stored, cache)
    return out, timing, ran


def run_head(*, config: TrainConfig, model: torch.nn.Module, spec: ModelSpec, data: SplitData, run_dir: Path,
             device: torch.device, precision: str, info: DistInfo, resume_state: dict | None, progress: bool,
             log: Callable[[str], None], started: float = 0.0) -> Outcome:
    model.eval()
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    feats, timing, ran = _features(config, model, spec, data, run_dir, device, precision, info, progress, log)
    head = model.head
    train_f, train_y = feats["train"]
    views = train_f.shape[1]
    train_x = train_f.reshape(-1, train_f.shape[-1]).to(device)  # (N*V, F): every view is a sample
    train_y = train_y.repeat_interleave(views).to(device)
    val_x, val_y = feats["val"][0][:, 0].to(device), feats["val"][1].to(device)
    counts = list(data.counts("train").values())
    criterion = loop.make_criterion(loop.class_weights(counts, config.class_weights), config.label_smoothing)
    criterion.to(device)
    optimizer = loop.make_optimizer([(head.parameters(), 1.0)], config.optimizer, config.lr, config.weight_decay)
    best_state = copy.deepcopy(head.state_dict())
    if resume_state is not None:
        head.load_state_dict(resume_state["state_dict"])
    start_epoch, early, history = _restore(resume_state, optimizer, config.patience)
    bar = tqdm(range(start_epoch, _end_epoch(config, early)), desc="head epochs", unit="ep", disable=None if progress else True,
               leave=False)
    for epoch in bar:
        stats = loop.head_epoch(head, train_x, train_y, optimizer, criterion, batch_size=config.batch_size,
                                epoch=epoch, epochs=config.epochs, base_lr=config.lr, warmup=0.0,
                                seed=config.seed)
        val_loss, val_acc, _ = loop.evaluate_head(head, val_x, val_y)
        improved = early.update(val_loss, epoch + 1)
        history.append(_history_row(epoch, stats, val_loss, val_acc))
        bar.set_postfix(loss=f"{stats['train_loss']:.3f}", val_acc=f"{val_acc:.3f}")
        if improved:
            best_state = copy.deepcopy(head.state_dict())
        if info.is_main:
            _save_epoch(run_dir, model=model, scope_state=head.state_dict(), spec=spec, config=config,
                        optimizer=optimizer, early=early, history=history, improved=improved)
        if early.should_stop:
            log(f"early stop after epoch {epoch + 1}: validation loss has not improved for {config.patience} epochs")
            break
    bar.close()
    head.load_state_dict(best_state)
    val_loss, val_acc, _ = loop.evaluate_head(head, val_x, val_y)
    cached = statistics.median(r["seconds"] for r in history) if history else float("nan")
    metrics = {"val_loss": val_loss, "val_acc": val_acc, "best_epoch": early.best_epoch,
               "precision": precision, "device": str(device), "mode": "head", "feature_runtime": ran,
               "timing": {**timing, "cached_epoch_s": cached,
                          "cached_speedup": timing.get("backbone_epoch_s", float("nan")) / max(cached, 1e-9)}}
    test = None
    with torch.no_grad():
        val = (head(val_x).float().cpu().numpy(), val_y.cpu().numpy())
        if "test" in feats:
            test = (head(feats["test"][0][:, 0].to(device)).float().cpu().numpy(), feats["test"][1].numpy())
    frozen = {"train": train_f[:, 0].numpy(), "val": feats["val"][0][:, 0].numpy()}  # (N, F) center views
    return Outcome(history=history, best_epoch=early.best_epoch, metrics=metrics, test=test, val=val, frozen=frozen)


# -------------------------------------------------------------------------------------------- finetune
def run_finetune(*, config: TrainConfig, model: torch.nn.Module, spec: ModelSpec, data: SplitData, run_dir: Path,
                 device: torch.device, precision: str, info: DistInfo, resume_state: dict | None, progress: bool,
                 log: Callable[[str], None], started: float = 0.0) -> Outcome:
    from torch.nn.parallel import DistributedDataParallel

    from clfkit.train.finetune import evaluate_loader, finetune_epoch, make_loader

    workers = config.workers if config.workers is not None else min(4, max(0, (torch.get_num_threads() or 1) - 1))
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None) \
        if info.enabled else model
    loaders = {s: make_loader(samples, spec, train=(s == "train"), batch_size=config.batch_size, workers=workers,
                              seed=config.seed, info=info, device=device) for s, samples in data.splits.items()}
    counts = list(data.counts("train").values())
    criterion = loop.make_criterion(loop.class_weights(counts, config.class_weights), config.label_smoothing)
    criterion.to(device)
    optimizer = loop.make_optimizer([(model.backbone.parameters(), config.backbone_lr_scale),
                                     (model.head.parameters(), 1.0)], config.optimizer, config.lr, config.weight_decay)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" and device.type == "cuda" else None
    best_state = copy.deepcopy(model.state_dict())
    if resume_state is not None:
        model.load_state_dict(resume_state["state_dict"])
        if scaler is not None and "scaler" in resume_state:
            scaler.load_state_dict(resume_state["scaler"])
    start_epoch, early, history = _restore(resume_state, optimizer, config.patience)
    seen: list[int] = []
    for epoch in range(start_epoch, _end_epoch(config, early)):
        n_train = len(loaders["train"].sampler) if loaders["train"].sampler is not None else len(data.splits["train"])
        with tqdm(total=n_train, desc=f"epoch {epoch + 1}/{config.epochs}", unit="img", disable=None if progress else True,
                  leave=False) as bar:
            stats = finetune_epoch(net, loaders["train"], optimizer, criterion, epoch=epoch, epochs=config.epochs,
                                   base_lr=config.lr, warmup=float(config.warmup_epochs), device=device,
                                   precision=precision, scaler=scaler, info=info, progress=bar.update,
                                   seen=seen if epoch == start_epoch else None)
        val_loss, val_acc, _, _ = evaluate_loader(model, loaders["val"], device, spec.num_classes, info)
        improved = early.update(val_loss, epoch + 1)
        history.append(_history_row(epoch, stats, val_loss, val_acc))
        log(_epoch_line(history[-1]))
        if improved:
            best_state = copy.deepcopy(model.state_dict())
        if info.is_main:
            extra = {"scaler": scaler.state_dict()} if scaler is not None else None
            _save_epoch(run_dir, model=model, scope_state=model.state_dict(), spec=spec, config=config,
                        optimizer=optimizer, early=early, history=history, improved=improved, extra=extra)
        if early.should_stop:
            log(f"early stop after epoch {epoch + 1}: validation loss has not improved for {config.patience} epochs")
            break
    model.load_state_dict(best_state)
    val_loss, val_acc, val_logits, val_labels = evaluate_loader(model, loaders["val"], device, spec.num_classes, info)
    test = None
    if "test" in loaders:
        _, _, logits, labels = evaluate_loader(model, loaders["test"], device, spec.num_classes, info)
        test = (logits, labels)
    metrics = {"val_loss": val_loss, "val_acc": val_acc, "best_epoch": early.best_epoch, "precision": precision,
               "device": str(device), "mode": "finetune", "world_size": info.world_size}
    return Outcome(history=history, best_epoch=early.best_epoch, metrics=metrics, test=test,
                   val=(val_logits, val_labels), seen_train_indices=seen)
