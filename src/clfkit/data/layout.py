"""Which folder holds which split, and what label a file has: the one place that answers both.  No torch.

* A *split* folder is what clf-split writes: ``DATA/{train,val[,test]}/<class>/``.  :func:`read_split_folders`
  reads it for training (class indices = the sorted class folders of ``train/``, stored in the ModelSpec; val
  and test must have the same classes) and :func:`evaluation_folder` says which split to evaluate on (test,
  else val, else DATA itself as a class-per-folder directory).
* The label of a file is the first-level folder under the root it sits in (:func:`class_folder_of`); deeper
  folders belong to it, loose files at the root have none.
* Samples for export's verification and calibration are taken round robin over the class folders
  (:func:`list_images`), so the first 64 images of a validation split cover every class.
* A run remembers its data folder; :func:`find_split` finds ``<data>/<split>`` again from the checkpoint.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from PIL import Image

from clfkit.data.scan import class_dirs, iter_image_files
from clfkit.errors import DataError, ImageError
from clfkit.parallel import ordered_map
from clfkit.vision.images import load_rgb

__all__ = ["Sample", "SplitData", "read_split_folders", "drop_unreadable", "evaluation_folder", "class_folder_of",
           "ImageSet", "list_images", "load_images", "find_split"]


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int


@dataclass
class SplitData:
    root: Path
    class_names: tuple[str, ...]
    splits: dict[str, list[Sample]]  # "train", "val" and, when present, "test"
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (split, path, reason)

    def counts(self, split: str) -> dict[str, int]:
        counts = {name: 0 for name in self.class_names}
        for sample in self.splits.get(split, []):
            counts[self.class_names[sample.label]] += 1
        return counts


def _classes_with_images(folder: Path) -> dict[str, list[Path]]:
    dirs, _ = class_dirs(folder)
    return {d.name: list(iter_image_files(d)) for d in dirs}


def read_split_folders(root: Path) -> SplitData:
    """Scan DATA/train, DATA/val and optional DATA/test; raise one DataError naming every inconsistency."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: data folder not found (make one with `clf-split IMAGES {root}`, or pass "
                        "--auto-split with a class-per-folder directory)")
    missing = [s for s in ("train", "val") if not (root / s).is_dir()]
    if missing:
        raise DataError(f"{root}: expected {root}/train and {root}/val (as written by clf-split) but "
                        f"{', '.join(missing)} is missing; for a plain class-per-folder directory use --auto-split")
    found = {s: _classes_with_images(root / s) for s in ("train", "val", "test") if (root / s).is_dir()}
    train = found["train"]
    problems = []
    empty = sorted(c for c, files in train.items() if not files)
    if empty:
        problems.append(f"empty class folder(s) in train: {', '.join(empty)}")
    names = tuple(sorted(c for c, files in train.items() if files))
    if not names:
        raise DataError(f"{root}/train: no images found in any class folder")
    for split in ("val", "test"):
        if split not in found:
            continue
        present = {c for c, files in found[split].items() if files}
        extra = sorted(present - set(names))
        lacking = sorted(set(names) - present)
        if extra:
            problems.append(f"class(es) only in {split}, not in train: {', '.join(extra)}")
        if lacking:
            problems.append(f"class(es) with no {split} images: {', '.join(lacking)}")
    if problems:
        raise DataError(f"{root}: train/val/test class sets differ: " + "; ".join(problems)
                        + " (re-split with clf-split, e.g. --min-images 3 drops classes too small to split)")
    index = {name: i for i, name in enumerate(names)}
    splits = {
        split: [Sample(path, index[name]) for name in names for path in found[split].get(name, [])]
        for split in found
    }
    return SplitData(root=root, class_names=names, splits=splits)


def _check(sample: Sample) -> str | None:
    try:
        load_rgb(sample.path)
    except ImageError as exc:
        return exc.reason
    return None


def drop_unreadable(data: SplitData, workers: int | None = None) -> SplitData:
    """Decode every image once; drop (and record) those that fail, so training never meets them."""
    for split, samples in data.splits.items():
        kept = []
        for sample, reason in zip(samples, ordered_map(_check, samples, workers=workers)):
            if reason is None:
                kept.append(sample)
            else:
                data.skipped.append((split, str(sample.path), reason))
        data.splits[split] = kept
    lost = [n for n, c in data.counts("train").items() if c == 0]
    if lost:
        raise DataError(f"{data.root}: no readable training images left for class(es) {', '.join(lost)}; "
                        "see the skipped files")
    return data

def evaluation_folder(data: Path) -> tuple[Path, str | None]:
    """(folder, split name) to evaluate on: ``DATA/test`` of a clf-split folder, ``DATA/val`` when it has no
    test split, else DATA itself (a class-per-folder directory; split name None)."""
    data = Path(data)
    if (data / "train").is_dir():
        for split in ("test", "val"):
            if (data / split).is_dir():
                return data / split, split
    return data, None


def class_folder_of(path: str | os.PathLike, root: str | os.PathLike) -> str | None:
    """The first-level folder of ``root`` that ``path`` sits in (its class, when the folder is one of the model's
    classes); None for a loose file at the root or a path outside it."""
    try:
        parts = Path(path).relative_to(root).parts
    except ValueError:
        return None
    return parts[0] if len(parts) >= 2 else None


@dataclass
class ImageSet:
    images: list[Image.Image]
    source: str  # for reports: the folder, or "generated images"
    labels: list[int] | None = None  # class index per image when every image sits in a known class folder
    files: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # unreadable files: "path: reason"


def list_images(folder: Path, limit: int | None = None, class_names: Sequence[str] = ()) -> list[tuple[Path, int]]:
    """Up to ``limit`` image files under ``folder`` as (path, label), label = -1 outside a known class folder.

    Files are grouped by their first-level subfolder, each group sorted by name, then taken round robin.
    """
    folder = Path(folder)
    groups: dict[str, list[Path]] = {}
    for path in iter_image_files(folder):  # the one folder scan: hidden entries skipped, symlinked dirs not followed
        groups.setdefault(class_folder_of(path, folder) or "", []).append(path)
    index = {name: i for i, name in enumerate(class_names)}
    ordered = [sorted(groups[k]) for k in sorted(groups) if groups[k]]
    picked: list[tuple[Path, int]] = []
    depth = 0
    while ordered and (limit is None or len(picked) < limit):
        row = [g[depth] for g in ordered if depth < len(g)]
        if not row:
            break
        for path in row:
            if limit is not None and len(picked) >= limit:
                break
            picked.append((path, index.get(class_folder_of(path, folder) or "", -1)))
        depth += 1
    return picked


def load_images(folder: Path, limit: int | None, class_names: Sequence[str] = ()) -> ImageSet:
    """Decode up to ``limit`` images under ``folder`` (unreadable ones are listed in ``skipped``)."""
    out = ImageSet(images=[], source=str(folder))
    labels: list[int] = []
    for path, label in list_images(folder, limit, class_names):
        try:
            out.images.append(load_rgb(path))
        except ImageError as exc:
            out.skipped.append(str(exc))
            continue
        out.files.append(str(path))
        labels.append(label)
    if labels and all(label >= 0 for label in labels):
        out.labels = labels
    return out


def find_split(config: Mapping[str, Any], checkpoint: Path, split: str) -> Path | None:
    """``<data>/<split>`` of the run that wrote ``checkpoint``, if that folder still exists.

    ``config["data"]`` is the data folder clf-train used; a relative path is tried as given (the current
    folder), then against the checkpoint's folder and its parents (a moved project keeps working).
    """
    data = config.get("data") if isinstance(config, Mapping) else None
    if not data or not isinstance(data, (str, os.PathLike)):
        return None
    data_path = Path(data)
    bases = [Path.cwd()] if not data_path.is_absolute() else [Path("/")]
    if not data_path.is_absolute():
        bases += list(Path(checkpoint).resolve().parents)[:3]
    for base in bases:
        candidate = base / data_path / split
        if candidate.is_dir():
            return candidate
    return None
