"""The label audit: which photos' given labels an out-of-fold model disagrees with most.  No torch.

clf-train fits a linear model k times on frozen-backbone features (:mod:`clfkit.train.audit`), each time on all
folds but one, and predicts the held-out fold, so every photo is judged by a model that never saw it (nor any
photo of its near-duplicate group: a group shares a fold, :func:`fold_assignment`).  This module turns those
out-of-fold probabilities into the ranked table ``report/label_issues.csv`` and the thumbnail grid
``report/label_issues.png``.

Ranking: first the photos that clf-split found in several classes (byte-identical or near-identical copies
filed under different labels: at most one of the labels can be right, so they are always worth a look; one
group's members stay together), then every other photo by its margin, the given label's probability minus the
best other class's (lowest first: a negative margin means the model prefers another class, and the more
negative, the more confidently).  Every audited photo gets a row, so the bottom of the file is what the model
agrees with most.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from clfkit.io import write_csv
from clfkit.vision.similarity import Components

__all__ = ["AUDIT_COLUMNS", "AuditItem", "AuditRow", "fold_assignment", "unit_ids", "rank_label_issues",
           "write_label_issues", "write_label_grid", "grid_caption", "summarize"]

AUDIT_COLUMNS = ("rank", "path", "given_label", "suggested_label", "given_prob", "suggested_prob", "margin",
                 "split", "fold", "cross_class_group", "file")


@dataclass(frozen=True)
class AuditItem:
    """One audited photo: ``path`` names the source photo (the manifest's ``source``, ``class/relpath`` in the
    folder clf-split read; the file under DATA when there is no manifest), ``file`` is what clf-train read."""
    path: str
    file: str
    split: str


@dataclass(frozen=True)
class AuditRow:
    rank: int
    path: str
    given_label: str
    suggested_label: str  # the most probable class other than the given one
    given_prob: float
    suggested_prob: float
    margin: float  # given_prob - suggested_prob: < 0 when the model prefers another class
    split: str
    fold: int
    cross_class_group: str  # first member of the photo's group of copies in several classes, "" for most
    file: str

    @property
    def disagrees(self) -> bool:
        return self.margin < 0

    def values(self) -> tuple[object, ...]:
        return tuple(f"{v:.4f}" if isinstance(v, float) else v for v in
                     (getattr(self, c) for c in AUDIT_COLUMNS))


def unit_ids(keys: Sequence[Sequence[str]]) -> np.ndarray:
    """Connected components over samples: ``keys[i]`` are sample i's tags (a file hash, a near-duplicate group
    name); samples that share any tag get one unit id, so they share a fold.  (N,) int64, ids 0..U-1 in order
    of first appearance."""
    first: dict[str, int] = {}
    pairs = []  # (the first sample with a tag, a later one with it): the one union-find clf-split uses
    for i, tags in enumerate(keys):
        for tag in filter(None, tags):
            pairs.append((first.setdefault(tag, i), i))
    components = Components(len(keys))
    if pairs:
        a, b = np.array(pairs, np.int64).T
        components.union(a, b)
    renumber: dict[int, int] = {}  # roots are each component's smallest index: ids follow first appearance
    return np.array([renumber.setdefault(r, len(renumber)) for r in components.labels().tolist()], np.int64)


def fold_assignment(labels: Sequence[int], units: Sequence[int], folds: int, seed: int = 0) -> np.ndarray:
    """A fold (0..folds-1) per sample: stratified by class, and every unit (near-duplicate group) whole in one
    fold, so no photo is judged by a model trained on a copy of it.  Seeded and deterministic.

    Greedy, as scikit-learn's StratifiedGroupKFold: units in a seeded order, biggest first, each into the fold
    that holds the smallest share of its classes so far (ties: the fold with fewest samples, then the lowest
    index)."""
    labels = np.asarray(labels, np.int64)
    units = np.asarray(units, np.int64)
    if labels.shape != units.shape:
        raise ValueError(f"labels {labels.shape} and units {units.shape} differ in shape")
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if not len(labels):
        return np.zeros(0, np.int64)
    classes = int(labels.max()) + 1
    class_total = np.maximum(np.bincount(labels, minlength=classes), 1).astype(np.float64)
    members: dict[int, list[int]] = {}
    for i, u in enumerate(units.tolist()):
        members.setdefault(u, []).append(i)
    order = np.random.default_rng(seed).permutation(sorted(members))
    order = sorted(order.tolist(), key=lambda u: -len(members[u]))  # stable: the seeded order breaks size ties
    per_fold = np.zeros((folds, classes))
    size = np.zeros(folds)
    out = np.empty(len(labels), np.int64)
    for u in order:
        hist = np.bincount(labels[members[u]], minlength=classes)
        share = ((per_fold + hist) / class_total)[:, hist > 0].sum(1)
        fold = min(range(folds), key=lambda f: (round(share[f], 12), size[f], f))
        per_fold[fold] += hist
        size[fold] += len(members[u])
        out[members[u]] = fold
    return out


def rank_label_issues(probs: np.ndarray, labels: Sequence[int], class_names: Sequence[str],
                      items: Sequence[AuditItem], folds: Sequence[int],
                      cross_class_groups: Sequence[Sequence[str]] = ()) -> list[AuditRow]:
    """Every item as a ranked :class:`AuditRow` (rank 1 first): members of ``cross_class_groups`` (lists of
    item paths) first, group by group, then the rest by margin, lowest first (ties: lower given probability,
    then path).  ``probs`` (N, C) are out-of-fold probabilities."""
    probs = np.asarray(probs, np.float64)
    labels = np.asarray(labels, np.int64)
    n = len(items)
    if probs.shape != (n, len(class_names)) or labels.shape != (n,) or len(folds) != n:
        raise ValueError(f"probs {probs.shape}, labels {labels.shape}, {len(folds)} folds and {n} items must "
                         f"describe the same {n} images of {len(class_names)} classes")
    group_of: dict[str, str] = {}
    for group in cross_class_groups:
        present = [p for p in group if p]
        for p in present:
            group_of.setdefault(p, present[0])
    given = probs[np.arange(n), labels] if n else np.zeros(0)
    others = probs.copy()
    if n:
        others[np.arange(n), labels] = -np.inf
    best = others.argmax(1) if n and probs.shape[1] > 1 else np.zeros(n, np.int64)
    best_p = others[np.arange(n), best] if n and probs.shape[1] > 1 else np.zeros(n)
    margin = given - best_p
    group_margin: dict[str, float] = {}
    for i, item in enumerate(items):
        g = group_of.get(item.path)
        if g is not None:
            group_margin[g] = min(group_margin.get(g, math.inf), float(margin[i]))

    def key(i: int) -> tuple:
        g = group_of.get(items[i].path)
        if g is not None:
            return (0, group_margin[g], g, float(margin[i]), items[i].path)
        return (1, float(margin[i]), float(given[i]), "", items[i].path)

    rows = []
    for rank, i in enumerate(sorted(range(n), key=key), start=1):
        rows.append(AuditRow(rank=rank, path=items[i].path, given_label=class_names[labels[i]],
                             suggested_label=class_names[best[i]], given_prob=float(given[i]),
                             suggested_prob=float(best_p[i]), margin=float(margin[i]), split=items[i].split,
                             fold=int(folds[i]), cross_class_group=group_of.get(items[i].path, ""),
                             file=items[i].file))
    return rows


def write_label_issues(rows: Sequence[AuditRow], path: str | os.PathLike) -> Path:
    """report/label_issues.csv: :data:`AUDIT_COLUMNS`, one row per audited photo, in rank order."""
    return write_csv(path, AUDIT_COLUMNS, (row.values() for row in rows))


def grid_caption(row: AuditRow) -> str:
    """``given → suggested (p)`` with the suggested class's probability (``given ✓ (p)`` when the model
    agrees: a cross-class copy's right label), the photo's name, and whether it is filed in several classes."""
    verdict = (f"{row.given_label} → {row.suggested_label} ({row.suggested_prob:.2f})" if row.disagrees
               else f"{row.given_label} ✓ ({row.given_prob:.2f})")
    lines = [verdict, Path(row.path).name]
    if row.cross_class_group:
        lines.append("filed in several classes")
    return "\n".join(lines)


def write_label_grid(rows: Sequence[AuditRow], path: str | os.PathLike, limit: int = 24,
                     title: str | None = None) -> tuple[Path, int]:
    """report/label_issues.png: the top ``limit`` suspects (cross-class copies, then photos whose given label
    the model does not prefer) as captioned thumbnails; returns (path, photos drawn).  Unreadable files are
    left out."""
    from clfkit.errors import ImageError
    from clfkit.report.figures import image_grid
    from clfkit.vision.images import load_rgb

    items = []
    for row in rows:
        if len(items) >= limit:
            break
        if not (row.cross_class_group or row.disagrees):
            continue
        try:
            items.append((load_rgb(row.file), grid_caption(row)))
        except ImageError:
            continue
    title = title or (f"Label audit: the {len(items)} photos whose given label an out-of-fold model doubts most"
                      if items else "Label audit: the out-of-fold model agrees with every given label")
    return image_grid(items, path, cols=6, title=title), len(items)


def summarize(rows: Sequence[AuditRow]) -> dict[str, object]:
    """Counts for metrics.json: audited photos, how many the model would relabel, cross-class copies."""
    return {"images": len(rows), "disagree": sum(r.disagrees for r in rows),
            "cross_class_photos": sum(bool(r.cross_class_group) for r in rows),
            "top": [{"path": r.path, "given": r.given_label, "suggested": r.suggested_label,
                     "given_prob": round(r.given_prob, 4), "margin": round(r.margin, 4)} for r in rows[:10]]}
