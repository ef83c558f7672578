"""Stratified, seeded, leak-free train/val/test planning.  Pure functions: no file I/O.

Rounding rule (per class, n = number of decodable images in the class):

* ``n_val = floor(n * val + 0.5)`` and ``n_test = floor(n * test + 0.5)`` (round half up);
* when ``n >= 3``, each of val and test gets at least 1 image if its fraction is > 0;
* every class keeps at least 1 training image: while ``n_val + n_test > n - 1`` the larger of the two
  (test on a tie) gives one back.

Leakage: files with identical bytes form one unit and always land in the same split.  A photo that occurs in
two classes (same bytes, two labels) is kept in the training split of both classes, so neither evaluation
split holds a copy of a training image or an image whose label is ambiguous.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable, Sequence

from clfkit.errors import ConfigError

__all__ = ["SPLITS", "FileRecord", "split_counts", "plan_split", "validate_fractions"]

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)  # slots: one per file, 100,000s of them on a big folder
class FileRecord:
    """One decodable image: its class, its path relative to the class folder (POSIX), content hash, size."""

    class_name: str
    relpath: str
    sha256: str
    width: int = 0
    height: int = 0


def validate_fractions(val: float, test: float) -> None:
    for flag, value in (("--val", val), ("--test", test)):
        if not (0.0 <= value < 1.0) or math.isnan(value):
            raise ConfigError(f"{flag} must be a fraction in [0, 1), got {value}")
    if val + test >= 1.0:
        raise ConfigError(f"--val + --test must leave images for training (got {val} + {test} >= 1)")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def split_counts(n: int, val: float, test: float) -> tuple[int, int, int]:
    """(train, val, test) image counts for a class of ``n`` images; see the module docstring."""
    validate_fractions(val, test)
    if n <= 0:
        return 0, 0, 0
    n_val, n_test = _round_half_up(n * val), _round_half_up(n * test)
    if n >= 3:
        n_val = max(n_val, 1 if val > 0 else 0)
        n_test = max(n_test, 1 if test > 0 else 0)
    while n_val + n_test > n - 1:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def cross_class_duplicates(records: Iterable[FileRecord]) -> dict[str, list[FileRecord]]:
    """sha256 → records, for content that appears under more than one class."""
    by_hash: dict[str, list[FileRecord]] = defaultdict(list)
    for rec in records:
        by_hash[rec.sha256].append(rec)
    return {
        h: sorted(recs, key=lambda r: (r.class_name, r.relpath))
        for h, recs in sorted(by_hash.items())
        if len({r.class_name for r in recs}) > 1
    }


def plan_split(records: Sequence[FileRecord], val: float, test: float, seed: int) -> dict[tuple[str, str], str]:
    """Assign every record to a split.  Returns {(class_name, relpath): split}.

    The result depends only on the records (not their order), the fractions and the seed.
    """
    validate_fractions(val, test)
    pinned_hashes = set(cross_class_duplicates(records))
    by_class: dict[str, list[FileRecord]] = defaultdict(list)
    for rec in records:
        by_class[rec.class_name].append(rec)

    plan: dict[tuple[str, str], str] = {}
    for name in sorted(by_class):
        recs = sorted(by_class[name], key=lambda r: r.relpath)
        _, want_val, want_test = split_counts(len(recs), val, test)
        # Units: files of this class with identical bytes travel together (first path names the unit).
        units: dict[str, list[FileRecord]] = {}
        for rec in recs:
            units.setdefault(rec.sha256, []).append(rec)
        free = [u for h, u in units.items() if h not in pinned_hashes]
        for h, unit in units.items():
            if h in pinned_hashes:
                for rec in unit:
                    plan[(name, rec.relpath)] = "train"
        free.sort(key=lambda u: u[0].relpath)
        # A string seed is hashed deterministically by random.Random (not by PYTHONHASHSEED).
        random.Random(f"clfkit-split:{seed}:{name}").shuffle(free)
        got_val = got_test = 0
        for unit in free:
            size = len(unit)
            if got_val + size <= want_val:
                split, got_val = "val", got_val + size
            elif got_test + size <= want_test:
                split, got_test = "test", got_test + size
            else:
                split = "train"
            for rec in unit:
                plan[(name, rec.relpath)] = split
    return plan
