"""Stratified, seeded, leak-free train/val/test planning.  Pure functions: no file I/O.

Rounding rule (per class, n = number of decodable images in the class):

* ``n_val = floor(n * val + 0.5)`` and ``n_test = floor(n * test + 0.5)`` (round half up);
* when ``n >= 3``, each of val and test gets at least 1 image if its fraction is > 0;
* every class keeps at least 1 training image: while ``n_val + n_test > n - 1`` the larger of the two
  (test on a tie) gives one back.

Leakage: files with identical bytes form one unit and always land in the same split.  A photo that occurs in
two classes (same bytes, two labels) is kept in the training split of both classes, so neither evaluation
split holds a copy of a training image or an image whose label is ambiguous.

Near-duplicates (the same picture re-encoded, recropped or recoloured, or the next shot of the same object on
the same sheet) leak just as much as byte copies, so by default they join the unit of their twin: the units
are the connected components of "same bytes or near-duplicate" inside a class, and a unit too big for what
val or test still needs goes to train.  A near-duplicate in another class is treated like a byte copy there
(both kept in train): on the data it was measured on that is rare, and each case is a label to check.
Matching uses only what the records carry (see :mod:`clfkit.vision.similarity`), so the plan still depends
only on the records, the fractions and the seed.
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from clfkit.errors import ConfigError
from clfkit.vision.similarity import DEFAULT_RULE, THUMB_SIDE, Components, NearDuplicateRule, match_pairs, matchable

__all__ = ["SPLITS", "FileRecord", "NearDuplicates", "find_near_duplicates", "split_counts", "plan_split",
           "validate_fractions"]

Key = tuple[str, str]  # (class_name, relpath)

SPLITS = ("train", "val", "test")


@dataclass(frozen=True, slots=True)  # slots: one per file, 100,000s of them on a big folder
class FileRecord:
    """One decodable image: its class, its path relative to the class folder (POSIX), content hash, size, and
    its perceptual signature (:func:`clfkit.vision.similarity.signature`; an empty ``thumb`` means none, and
    such a record is never anyone's near-duplicate)."""

    class_name: str
    relpath: str
    sha256: str
    width: int = 0
    height: int = 0
    phash: int = 0
    thumb: bytes = field(default=b"", repr=False)

    @property
    def key(self) -> Key:
        return self.class_name, self.relpath


@dataclass(frozen=True)
class NearDuplicates:
    """What :func:`find_near_duplicates` found.  ``groups``: photos of one class that must share a split (at
    least two different files each, byte copies of a member included); ``cross_class``: near-duplicates that
    sit in different classes (byte copies excluded: :func:`cross_class_duplicates` has those).  All sorted."""

    groups: list[list[Key]]
    cross_class: list[list[Key]]
    rule: NearDuplicateRule = DEFAULT_RULE

    @property
    def pinned(self) -> set[Key]:
        return {key for group in self.cross_class for key in group}


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


def find_near_duplicates(records: Iterable[FileRecord], rule: NearDuplicateRule = DEFAULT_RULE) -> NearDuplicates:
    """Group the records whose signatures match under ``rule`` (connected components), within and across
    classes.  Independent of the order of ``records``."""
    size = THUMB_SIDE * THUMB_SIDE * 3
    recs = sorted((r for r in records if len(r.thumb) == size), key=lambda r: r.key)  # b"": no signature
    # One representative per (class, signature): byte copies and pixel-identical files are compared once.
    members: dict[tuple[str, int, bytes], list[FileRecord]] = {}
    for rec in recs:
        members.setdefault((rec.class_name, rec.phash, rec.thumb), []).append(rec)
    groups_of_reps = list(members.values())
    if not groups_of_reps:
        return NearDuplicates([], [], rule)
    thumbs = np.frombuffer(b"".join(m[0].thumb for m in groups_of_reps), np.uint8).reshape(-1, size)
    ok = matchable(thumbs)  # a flat thumbnail matches nothing, not even an identical one
    if not ok.all():
        groups_of_reps = [m for m, good in zip(groups_of_reps, ok.tolist()) if good]
        thumbs = thumbs[ok]
    n = len(groups_of_reps)
    hashes = np.array([m[0].phash for m in groups_of_reps], np.uint64)
    class_ids = {c: k for k, c in enumerate(sorted({m[0].class_name for m in groups_of_reps}))}
    rep_class = np.array([class_ids[m[0].class_name] for m in groups_of_reps], np.int64)
    sha_ids: dict[str, int] = {}
    rep_sha = np.array([sha_ids.setdefault(m[0].sha256, len(sha_ids)) if len({r.sha256 for r in m}) == 1 else -1
                        for m in groups_of_reps], np.int64)  # -1: the representative stands for several files

    within, across = Components(n), Components(n)
    in_cross = np.zeros(n, bool)
    # Same-class pairs already joined need no check; pairs across classes never are (`within` stays per class).
    for a, b in match_pairs(hashes, thumbs, rule, known=within):
        same = rep_class[a] == rep_class[b]
        within.union(a[same], b[same])
        a, b = a[~same], b[~same]
        byte_copy = (rep_sha[a] == rep_sha[b]) & (rep_sha[a] >= 0)
        a, b = a[~byte_copy], b[~byte_copy]
        if len(a):
            across.union(a, b)
            in_cross[a] = in_cross[b] = True

    def collect(labels: np.ndarray, chosen: np.ndarray) -> dict[int, list[FileRecord]]:
        found: dict[int, list[FileRecord]] = defaultdict(list)
        for i in np.flatnonzero(chosen).tolist():
            found[int(labels[i])].extend(groups_of_reps[i])
        return found

    groups = [g for g in collect(within.labels(), np.ones(n, bool)).values() if len({r.sha256 for r in g}) > 1]
    cross = list(collect(across.labels(), in_cross).values())

    def tidy(found: list[list[FileRecord]]) -> list[list[Key]]:
        return sorted(sorted(r.key for r in g) for g in found)

    return NearDuplicates(tidy(groups), tidy(cross), rule)


def plan_split(records: Sequence[FileRecord], val: float, test: float, seed: int,
               near_duplicates: bool | NearDuplicates = True) -> dict[tuple[str, str], str]:
    """Assign every record to a split.  Returns {(class_name, relpath): split}.

    ``near_duplicates``: True finds them in ``records`` (:func:`find_near_duplicates`), False keeps only byte
    copies together (the plan of earlier versions), or pass what :func:`find_near_duplicates` returned for
    these records.  The result depends only on the records (not their order), the fractions and the seed.
    """
    validate_fractions(val, test)
    if near_duplicates is True:
        near_duplicates = find_near_duplicates(records)
    near = near_duplicates if isinstance(near_duplicates, NearDuplicates) else NearDuplicates([], [])
    pinned_hashes = set(cross_class_duplicates(records))
    pinned_keys = near.pinned
    group_of = {key: group[0] for group in near.groups for key in group}
    by_class: dict[str, list[FileRecord]] = defaultdict(list)
    for rec in records:
        by_class[rec.class_name].append(rec)

    plan: dict[tuple[str, str], str] = {}
    for name in sorted(by_class):
        recs = sorted(by_class[name], key=lambda r: r.relpath)
        _, want_val, want_test = split_counts(len(recs), val, test)
        # Units: files of this class with identical bytes, or near-duplicates, travel together.
        units = _units(recs, group_of)
        free = []
        for unit in units:
            if any(r.sha256 in pinned_hashes or r.key in pinned_keys for r in unit):
                for rec in unit:
                    plan[(name, rec.relpath)] = "train"
            else:
                free.append(unit)
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


def _units(recs: list[FileRecord], group_of: dict[Key, Key]) -> list[list[FileRecord]]:
    """Connected components of "same bytes" and "same near-duplicate group" over one class's records (sorted
    by path), each sorted by path; without groups, exactly the byte-identical units."""
    first: dict[tuple[str, object], int] = {}
    a, b = [], []
    for i, rec in enumerate(recs):
        for tag in (("sha", rec.sha256), ("group", group_of.get(rec.key))):
            if tag[1] is not None and (j := first.setdefault(tag, i)) != i:
                a.append(i)
                b.append(j)
    components = Components(len(recs))
    if a:
        components.union(np.array(a), np.array(b))
    units: dict[int, list[FileRecord]] = defaultdict(list)
    for rec, root in zip(recs, components.labels().tolist()):  # roots are smallest indices: path order kept
        units[root].append(rec)
    return list(units.values())
