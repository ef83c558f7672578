"""Training data: read ``DATA/{train,val,test}/<class>/`` as written by clf-split, and check it once.

Class indices come from the sorted class folders of ``train/`` and are stored in the ModelSpec; val and test
must have the same classes (a class that is only in val, or missing from test, is an error that names it).
Unreadable images are found here, before any model work, and listed in ``RUN_DIR/skipped.csv``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from clfkit.data.scan import class_dirs, iter_image_files
from clfkit.errors import DataError, ImageError
from clfkit.images import load_rgb
from clfkit.parallel import ordered_map

__all__ = ["Sample", "SplitData", "read_split_folders", "drop_unreadable"]


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
