"""The label audit of clf-train: out-of-fold probabilities on frozen-backbone features → report/label_issues.csv.

Over train + val, a multinomial logistic regression (standardised features, L2, balanced class weights,
full-batch L-BFGS on one thread: about a second a fold for 1,000 photos) is fitted ``AUDIT_FOLDS`` times, each
time on all folds but one, and predicts the held-out fold; the folds are stratified and keep every near-duplicate group of clf-split's manifest whole
(:func:`clfkit.report.audit.fold_assignment`), so no photo is judged by a model that saw it or a copy of it.
The ranking and the files are :mod:`clfkit.report.audit`'s.

Features: the pretrained backbone's pooled features of each photo's center view.  Head mode has them cached
already, partial mode computes them for its warm start (both hand them over in ``Outcome.frozen``); otherwise
(finetune, a resumed partial run) the pretrained backbone is built again and run once over the center views
(one forward pass per train/val photo, cached in RUN_DIR/cache).  Why frozen features and not the trained
model: a model fine-tuned on the given labels has learnt the wrong ones too.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from clfkit.artifacts.checkpoint import read_cache, save_state
from clfkit.data.layout import SplitData
from clfkit.data.manifest import SplitRecords, read_split_records
from clfkit.errors import DataError
from clfkit.report.audit import (AuditItem, fold_assignment, rank_label_issues, summarize, unit_ids,
                                 write_label_grid, write_label_issues)
from clfkit.spec import ModelSpec
from clfkit.train.config import TrainConfig
from clfkit.train.distributed import DistInfo, from_rank_order, gather_objects
from clfkit.train.frozen_runtime import pooled_features_on_ort

__all__ = ["AUDIT_FOLDS", "AUDIT_L2", "AUDIT_SPLITS", "out_of_fold_probs", "audit_items", "run_label_audit"]

Log = Callable[[str], None]
AUDIT_FOLDS = 5
AUDIT_SPLITS = ("train", "val")
# L2 on the weights of standardised features (mean loss + AUDIT_L2/2 * |W|^2).  Chosen on the boats and trashnet
# center features of EfficientNet-Lite2 (out-of-fold log loss was lowest near it, accuracy flat around it).
AUDIT_L2 = 3e-2
GRID_PHOTOS = 24
_LBFGS_STEPS = 100  # converged: 200 steps moved no probability by more than 0.001 on boats


def _fit_softmax(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights (F, C) and bias (C,) of a multinomial logistic regression, balanced class weights, L-BFGS."""
    counts = torch.bincount(y, minlength=num_classes).double()
    present = int((counts > 0).sum())
    weight = torch.where(counts > 0, len(y) / (present * counts.clamp(min=1)), torch.zeros_like(counts))
    w = torch.zeros(x.shape[1], num_classes, dtype=x.dtype, requires_grad=True)
    b = torch.zeros(num_classes, dtype=x.dtype, requires_grad=True)
    optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=_LBFGS_STEPS, history_size=20,
                                  line_search_fn="strong_wolfe", tolerance_grad=1e-6, tolerance_change=1e-10)
    loss_fn = nn.CrossEntropyLoss(weight=weight.to(x.dtype))  # weighted mean over the batch

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(x @ w + b, y) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def out_of_fold_probs(features: np.ndarray, labels: np.ndarray, folds: np.ndarray, num_classes: int,
                      l2: float = AUDIT_L2) -> np.ndarray:
    """(N, C) float64 probabilities, row i from the model fitted on every fold but ``folds[i]`` (features
    standardised with that model's training rows only)."""
    x_all = torch.from_numpy(np.ascontiguousarray(features, np.float64))
    y_all = torch.from_numpy(np.asarray(labels, np.int64))
    folds = np.asarray(folds)
    probs = np.zeros((len(labels), num_classes))
    # One thread: the matrices are small (N x F by C), and on a busy 2-core machine two threads made the five
    # fits ~9x slower than one (OpenMP waits), one thread was never slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _fit_folds(x_all, y_all, folds, num_classes, l2, probs)
    finally:
        torch.set_num_threads(threads)
    return probs


def _fit_folds(x_all: torch.Tensor, y_all: torch.Tensor, folds: np.ndarray, num_classes: int, l2: float,
               probs: np.ndarray) -> None:
    with torch.enable_grad():
        for fold in np.unique(folds):
            held = torch.from_numpy(folds == fold)
            x, y = x_all[~held], y_all[~held]
            if not len(y):
                probs[held.numpy()] = 1.0 / num_classes
                continue
            mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
            w, b = _fit_softmax((x - mean) / std, y, num_classes, l2)
            probs[held.numpy()] = torch.softmax(((x_all[held] - mean) / std) @ w + b, 1).numpy()


def audit_items(data: SplitData, records: SplitRecords) -> tuple[list[AuditItem], np.ndarray, np.ndarray]:
    """The train + val photos in order (train first) as items, their labels and their fold units: photos that
    share bytes, a near-duplicate group or a cross-class group share a unit."""
    items: list[AuditItem] = []
    labels: list[int] = []
    tags: list[list[str]] = []
    cross_of = {p: g[0] for g in records.cross_class for p in g}
    for split in AUDIT_SPLITS:
        for sample in data.splits.get(split, []):
            try:
                key = sample.path.relative_to(data.root).as_posix()
            except ValueError:
                key = sample.path.as_posix()
            source = records.source.get(key, key)
            items.append(AuditItem(path=source, file=str(sample.path), split=split))
            labels.append(sample.label)
            tags.append([f"sha:{records.sha256.get(key, '')}" if records.sha256.get(key) else "",
                         f"group:{records.group[key]}" if key in records.group else "",
                         f"cross:{cross_of[source]}" if source in cross_of else ""])
    return items, np.array(labels, np.int64), unit_ids(tags)


def _aligned(frozen: dict[str, np.ndarray | None] | None, data: SplitData) -> dict[str, np.ndarray] | None:
    """``frozen`` when it holds one feature row per train and val sample, else None."""
    if not frozen or any(frozen.get(s) is None or len(frozen[s]) != len(data.splits.get(s, []))  # type: ignore[arg-type]
                         for s in AUDIT_SPLITS):
        return None
    return frozen  # type: ignore[return-value]


def _compute_frozen(config: TrainConfig, spec: ModelSpec, data: SplitData, run_dir: Path, device: torch.device,
                    precision: str, info: DistInfo, progress: bool, log: Log) -> dict[str, np.ndarray] | None:
    """Center-view features of the pretrained backbone for train + val (sharded over ranks), cached."""
    from clfkit.models.classifier import build_classifier
    from clfkit.train.features import extract_features, feature_cache_key
    from clfkit.train.modes import EXTRACT_BATCH

    splits = {s: data.splits.get(s, []) for s in AUDIT_SPLITS}
    key = feature_cache_key(spec, {"backbone": config.backbone, "weights": str(config.weights or ""),
                                   "purpose": "label-audit"}, splits, 1, config.seed, precision)
    cache = run_dir / "cache" / f"audit-features-{key[:24]}.pt"
    stored = read_cache(cache, key, log, "audit feature cache")
    if stored is not None:
        return {s: stored[s].numpy() for s in AUDIT_SPLITS}
    model, _ = build_classifier(config.backbone, spec.num_classes, config.head, pretrained=True,
                                weights=config.weights)
    model.to(device).eval()
    forward = pooled_features_on_ort(model, spec.input_size, log, "label audit") if device.type == "cpu" else None
    out: dict[str, np.ndarray] = {}
    for split, samples in splits.items():
        feats, ok = extract_features(model, samples[info.rank::info.world_size], spec, views=1, seed=config.seed,
                                     batch_size=EXTRACT_BATCH, device=device, precision=precision,
                                     workers=config.workers, desc=f"label audit: {split} features",
                                     progress=progress, forward=forward)
        parts = gather_objects((feats[:, 0], ok), info)
        if not all(all(o) for _, o in parts):
            return None
        full = np.concatenate([f for f, _ in parts]) if parts else np.zeros((0, model.num_features), np.float32)
        out[split] = from_rank_order(full, len(samples), info.world_size)  # type: ignore[assignment]
    del model
    if info.is_main:
        save_state({"key": key, **{s: torch.from_numpy(np.ascontiguousarray(f)) for s, f in out.items()}}, cache)
    return out


def run_label_audit(*, config: TrainConfig, data: SplitData, spec: ModelSpec, frozen: dict[str, np.ndarray] | None,
                    run_dir: Path, device: torch.device, precision: str, info: DistInfo, progress: bool,
                    log: Log) -> dict[str, Any] | None:
    """Rank the train + val photos by how much an out-of-fold model doubts their labels; rank 0 writes
    RUN_DIR/report/label_issues.csv and .png.  Every rank must call it (the feature pass is sharded); returns
    the block for metrics.json on rank 0, None elsewhere or when there is nothing to audit."""
    start = time.perf_counter()
    n = sum(len(data.splits.get(s, [])) for s in AUDIT_SPLITS)
    if n < 2 * AUDIT_FOLDS or len(data.class_names) < 2:
        log(f"label audit skipped: {n} train/val photos are too few for {AUDIT_FOLDS} folds")
        return None
    features = _aligned(frozen, data)
    source = "the training run's frozen features"
    if features is None:
        if not config.pretrained:
            log("label audit skipped: a random-init backbone (--no-pretrained) has no features to judge labels by")
            return None
        features = _aligned(_compute_frozen(config, spec, data, run_dir, device, precision, info, progress, log),
                            data)
        source = "a pass of the pretrained backbone over the center views"
        if features is None:
            log("label audit skipped: some train/val photos no longer decode")
            return None
    feature_s = time.perf_counter() - start
    if not info.is_main:
        return None
    try:
        records = read_split_records(data.root)
    except DataError as exc:
        log(f"label audit: {exc}; auditing without near-duplicate groups")
        records = SplitRecords()
    t0 = time.perf_counter()
    items, labels, units = audit_items(data, records)
    folds = fold_assignment(labels, units, AUDIT_FOLDS, seed=config.seed)
    x = np.concatenate([features[s] for s in AUDIT_SPLITS]).astype(np.float64)
    probs = out_of_fold_probs(x, labels, folds, spec.num_classes)
    fit_s = time.perf_counter() - t0
    rows = rank_label_issues(probs, labels, spec.class_names, items, folds, records.cross_class)
    report = run_dir / "report"
    csv_path = write_label_issues(rows, report / "label_issues.csv")
    png_path, drawn = write_label_grid(rows, report / "label_issues.png", limit=GRID_PHOTOS)
    seconds = time.perf_counter() - start
    block: dict[str, Any] = {
        **summarize(rows), "folds": AUDIT_FOLDS, "oof_accuracy": float((probs.argmax(1) == labels).mean()),
        "model": f"multinomial logistic regression (L2 {AUDIT_L2:g}, balanced class weights)",
        "features": source, "groups_from_manifest": records.found, "feature_s": feature_s, "fit_s": fit_s,
        "seconds": seconds, "csv": str(csv_path), "png": str(png_path), "grid_photos": drawn,
    }
    log(f"label audit: {block['disagree']} of {n} train/val photos have a given label the out-of-fold model "
        f"doubts ({block['cross_class_photos']} filed in several classes) → {csv_path} ({seconds:.1f} s)")
    return block
