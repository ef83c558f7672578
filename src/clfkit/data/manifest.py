"""Reading back what clf-split wrote next to a split: each file's source photo, hash and near-duplicate group
(``manifest.csv``) and the photos found in several classes (``split.json``).  No torch.

The writer is :mod:`clfkit.data.make_split`; this is its one reader.  A split folder made by hand has neither
file, and then every answer is empty (:attr:`SplitRecords.found` is False).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from clfkit.errors import DataError

__all__ = ["SplitRecords", "read_split_records"]

_NEEDED = ("path", "source", "sha256", "group")


@dataclass(frozen=True)
class SplitRecords:
    """Keyed by the file's path under DATA as the manifest writes it (``train/cat/x.jpg``)."""
    source: dict[str, str] = field(default_factory=dict)  # → the photo clf-split read: "cat/x.jpg"
    sha256: dict[str, str] = field(default_factory=dict)
    group: dict[str, str] = field(default_factory=dict)  # → its near-duplicate group's first member, if any
    # Source names of the photos filed under several classes: byte-identical copies, then near-identical ones.
    cross_class: list[list[str]] = field(default_factory=list)
    found: bool = False


def read_split_records(root: Path) -> SplitRecords:
    """DATA/manifest.csv and DATA/split.json of a clf-split folder; empty records when there are none.

    Raises DataError naming the file when one exists but cannot be read (missing columns, broken JSON)."""
    root = Path(root)
    manifest, meta = root / "manifest.csv", root / "split.json"
    if not manifest.is_file():
        return SplitRecords()
    source: dict[str, str] = {}
    sha: dict[str, str] = {}
    group: dict[str, str] = {}
    try:
        with open(manifest, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in _NEEDED if c not in (reader.fieldnames or ())]
            if missing:
                raise DataError(f"{manifest}: no {', '.join(missing)} column (re-run clf-split to rewrite it)")
            for row in reader:
                key = row["path"]
                source[key], sha[key] = row["source"] or key, row["sha256"]
                if row["group"]:
                    group[key] = row["group"]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{manifest}: cannot be read ({exc})") from None
    cross: list[list[str]] = []
    if meta.is_file():
        try:
            data = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"{meta}: cannot be read ({exc})") from None
        for key in ("cross_class_duplicates", "cross_class_near_duplicates"):
            groups = (data.get(key) or []) if isinstance(data, dict) else []
            cross.extend([str(p) for p in g] for g in groups if isinstance(g, list) and len(g) > 1)
    return SplitRecords(source=source, sha256=sha, group=group, cross_class=cross, found=True)
