"""clf-split on the real boats photos (skipped when ../shared/data/boats is absent)."""
from __future__ import annotations

import csv
import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from clfkit.data.make_split import format_summary, make_split
from clfkit.data.split import SPLITS, split_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BOAT_COUNTS = {
    "buoy": 68, "cruise_ship": 239, "ferry_boat": 81, "freight_boat": 29, "gondola": 242,
    "inflatable_boat": 21, "kayak": 254, "paper_boat": 40, "sailboat": 488,
}
VENICE = "venice-italy-cruise-ship-gondolas-2554244.jpg"  # the same photo filed as cruise_ship and gondola


def test_boats_split(boats_dir: Path, tmp_path: Path):
    dst = tmp_path / "data"
    # The shared folder is read-only; hardlinks work or fall back to copies, either is fine.
    result = make_split(boats_dir, dst, seed=0, mode="hardlink", progress=False)

    assert result.classes == sorted(BOAT_COUNTS)
    assert result.quarantined == [] and result.dropped_classes == {} and result.empty_classes == []
    assert sum(sum(c.values()) for c in result.counts.values()) == 1462
    for name, n in BOAT_COUNTS.items():
        # The pinned duplicate counts towards its class's train share; val and test still get their full share.
        assert result.counts[name] == dict(zip(SPLITS, split_counts(n, 0.15, 0.15))), name

    with open(dst / "manifest.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 1462
    splits_of = defaultdict(set)
    for row in rows:
        splits_of[row["sha256"]].add(row["split"])
    assert all(len(s) == 1 for s in splits_of.values()), "leakage: same bytes in two splits"
    assert len(splits_of) == 1461  # one photo occurs twice

    by_source = {r["source"]: r for r in rows}
    assert by_source[f"cruise_ship/{VENICE}"]["split"] == "train"
    assert by_source[f"gondola/{VENICE}"]["split"] == "train"
    assert result.cross_class_duplicates == [[f"cruise_ship/{VENICE}", f"gondola/{VENICE}"]]
    assert VENICE in format_summary(result)

    for row in rows[:: 97]:  # every placed file is the source file (linked or copied)
        placed, source = dst / row["path"], boats_dir / row["source"]
        assert os.stat(placed).st_ino == os.stat(source).st_ino or placed.read_bytes() == source.read_bytes()
    meta = json.loads((dst / "split.json").read_text())
    assert meta["quarantined"] == 0 and meta["counts"] == result.counts
