"""``clf-split``: scan a class-per-folder tree, check every image, and write a leak-free split with a manifest.

I/O lives here; the assignment itself is the pure :func:`clfkit.data.split.plan_split`.  Files are linked or
copied with ``os.link``/``shutil`` — never through a shell, so a file named ``$(rm -rf ~).jpg`` is just a name.

The perceptual signature is taken here, from the image every file is decoded into anyway (decoding is what
proves it readable), so finding near-duplicates costs a 32×32 thumbnail per file, not a second pass over the
folder.  What was grouped, and by which rule, goes into ``split.json`` and the manifest's ``group`` column,
so a surprising split can be checked photo by photo.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm.auto import tqdm

from clfkit.data.scan import iter_labelled
from clfkit.data.split import (
    SPLITS,
    FileRecord,
    NearDuplicates,
    cross_class_duplicates,
    find_near_duplicates,
    plan_split,
    validate_fractions,
)
from clfkit.errors import ConfigError, DataError, ImageError, OutputError, printable
from clfkit.io import write_csv, write_json
from clfkit.parallel import ordered_map
from clfkit.vision.images import load_rgb
from clfkit.vision.similarity import signature

__all__ = ["LINK_MODES", "SplitResult", "inspect_file", "make_split", "format_summary", "OUTPUT_NAMES"]

LINK_MODES = ("hardlink", "copy", "symlink")
# Everything make_split writes into DST; --overwrite removes exactly these, nothing else of the user's.
OUTPUT_NAMES = (*SPLITS, "manifest.csv", "quarantine.csv", "split.json")
_PARTIAL = ".clfkit-split-partial"
# "group": the first member ("class/relpath") of the photo's near-duplicate group, empty when it has none.
MANIFEST_COLUMNS = ("path", "class", "split", "sha256", "width", "height", "source", "group")


@dataclass
class SplitResult:
    dst: Path
    classes: list[str]
    counts: dict[str, dict[str, int]]  # class → split → images
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)  # (source, class, reason)
    dropped_classes: dict[str, int] = field(default_factory=dict)  # class → images, below --min-images
    empty_classes: list[str] = field(default_factory=list)
    cross_class_duplicates: list[list[str]] = field(default_factory=list)  # groups of "class/relpath"
    copied_instead_of_linked: int = 0
    near_duplicates_checked: bool = False
    near_duplicate_groups: list[list[str]] = field(default_factory=list)  # same class, kept on one side
    cross_class_near_duplicates: list[list[str]] = field(default_factory=list)  # kept in train: labels to check


def inspect_file(path: Path, class_dir: Path, class_name: str) -> FileRecord | ImageError:
    """Hash, fully decode and sign one file; an ImageError (returned, not raised) marks it for quarantine."""
    relpath = path.relative_to(class_dir).as_posix()
    try:
        f"{class_name}/{relpath}".encode("utf-8")
    except UnicodeEncodeError:  # e.g. Latin-1 bytes from an old zip: the UTF-8 manifest could not list it
        return ImageError(path, "file or folder name is not valid UTF-8; rename it")
    try:
        data = path.read_bytes()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "symbolic link loop"
        elif path.is_symlink() and not path.exists():
            reason = "broken symbolic link"
        else:
            reason = exc.strerror or str(exc)
        return ImageError(path, f"cannot read file ({reason})")
    try:
        image = load_rgb(io.BytesIO(data)) if data else load_rgb(path)
    except ImageError as exc:
        return ImageError(path, exc.reason)
    phash, thumb = signature(image)
    return FileRecord(
        class_name=class_name,
        relpath=relpath,
        sha256=hashlib.sha256(data).hexdigest(),
        width=image.width,
        height=image.height,
        phash=phash,
        thumb=thumb,
    )


def _check_destination(src: Path, dst: Path, overwrite: bool) -> None:
    src_r, dst_r = src.resolve(), dst.resolve()
    if src_r == dst_r or dst_r.is_relative_to(src_r) or src_r.is_relative_to(dst_r):
        raise ConfigError(f"DST {dst} must be outside SRC {src} (and not contain it): pick another folder")
    if dst.exists() and not dst.is_dir():
        raise DataError(f"{dst}: exists and is not a folder")
    if dst.is_dir() and any(True for e in os.scandir(dst) if e.name != _PARTIAL):
        if not overwrite:
            raise DataError(f"{dst}: folder is not empty; choose another DST or pass --overwrite")
        unknown = [e.name for e in os.scandir(dst) if e.name not in OUTPUT_NAMES and e.name != _PARTIAL]
        if unknown:
            raise DataError(
                f"{dst}: --overwrite only replaces a previous split, but the folder also holds "
                f"{', '.join(sorted(unknown)[:5])}; choose an empty DST"
            )


def _place(src: Path, dst: Path, mode: str) -> bool:
    """Link or copy one file; returns True when a hardlink had to fall back to a copy."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(src.resolve(), dst)
        return False
    if mode == "hardlink":
        try:
            os.link(src, dst, follow_symlinks=True)
            return False
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
                raise
    shutil.copyfile(src, dst)
    return mode == "hardlink"


def make_split(
    src: Path,
    dst: Path,
    *,
    val: float = 0.15,
    test: float = 0.15,
    seed: int = 0,
    min_images: int = 1,
    mode: str = "hardlink",
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] = lambda _msg: None,
    near_duplicates: bool = True,
) -> SplitResult:
    """Split ``src/<class>/...`` into ``dst/{train,val,test}/<class>/...`` plus ``manifest.csv``,
    ``quarantine.csv`` and ``split.json``.  Same inputs and seed → byte-identical outputs.

    ``near_duplicates``: keep near-identical photos of a class on one side of the split (and those found in
    two classes in train); False keeps only byte-identical files together."""
    src, dst = Path(src), Path(dst)
    validate_fractions(val, test)
    if mode not in LINK_MODES:
        raise ConfigError(f"--mode must be one of {', '.join(LINK_MODES)}, got {mode!r}")
    if min_images < 1:
        raise ConfigError(f"--min-images must be at least 1, got {min_images}")
    classes, files = iter_labelled(src)  # streamed: no list of every path is held
    _check_destination(src, dst, overwrite)

    records: list[FileRecord] = []
    quarantined: list[tuple[str, str, str]] = []

    def inspect(job: tuple[Path, str]) -> tuple[Path, str, FileRecord | ImageError]:
        path, name = job
        return path, name, inspect_file(path, src / name, name)

    # Bounded: a few files in flight per thread, whatever the folder size (a plain executor.map would hold a
    # future per file); what is kept per file is its small FileRecord, needed to plan the split.
    checked = ordered_map(inspect, files, workers=workers or min(8, (os.cpu_count() or 2) + 2))
    for path, name, result in tqdm(checked, desc="checking images", unit="img", disable=progress is False):
        if isinstance(result, ImageError):
            quarantined.append((path.relative_to(src).as_posix(), name, result.reason))
            log(f"skipped {printable(path)}: {result.reason}")
        else:
            records.append(result)

    per_class = dict.fromkeys(classes, 0)
    for rec in records:
        per_class[rec.class_name] += 1
    dropped = {c: n for c, n in per_class.items() if 0 < n < min_images}
    empty = [c for c, n in per_class.items() if n == 0]
    kept = [c for c in classes if c not in dropped and c not in empty]
    if not kept:
        raise DataError(f"{src}: no class has at least {min_images} readable images; nothing to split")
    records = [r for r in records if r.class_name in kept]
    near = find_near_duplicates(records) if near_duplicates else None
    plan = plan_split(records, val, test, seed, near_duplicates=near if near is not None else False)

    partial = dst / _PARTIAL
    new_dst = not dst.exists()
    try:
        counts, fallbacks, dups = _write_split(src, partial, records, quarantined, plan, mode, progress, near,
                                               meta={"seed": seed, "val": val, "test": test, "min_images": min_images,
                                                     "classes": kept, "dropped_classes": dropped,
                                                     "empty_classes": empty})
    except BaseException as exc:
        # Disk full, read-only, Ctrl-C: nothing half-written stays in DST (nor in the way of the next run).
        shutil.rmtree(partial, ignore_errors=True)
        if new_dst and dst.is_dir() and not any(dst.iterdir()):
            dst.rmdir()
        if isinstance(exc, OSError):
            where = f" ({exc.filename})" if exc.filename else ""
            raise OutputError(f"{dst}: cannot write the split: {exc.strerror or exc}{where}; nothing was "
                              "changed in DST") from None
        raise
    _swap_into_place(partial, dst)
    return SplitResult(dst=dst, classes=kept, counts=counts, quarantined=sorted(quarantined),
                       dropped_classes=dropped, empty_classes=empty, cross_class_duplicates=dups,
                       copied_instead_of_linked=fallbacks, near_duplicates_checked=near is not None,
                       near_duplicate_groups=_names(near.groups) if near else [],
                       cross_class_near_duplicates=_names(near.cross_class) if near else [])


def _names(groups: list[list[tuple[str, str]]]) -> list[list[str]]:
    return [[f"{c}/{p}" for c, p in group] for group in groups]


def _write_split(src: Path, partial: Path, records: list[FileRecord],
                 quarantined: list[tuple[str, str, str]], plan: dict[tuple[str, str], str], mode: str,
                 progress: bool | None, near: NearDuplicates | None,
                 meta: dict) -> tuple[dict[str, dict[str, int]], int, list[list[str]]]:
    """Build the whole split (files, manifest, quarantine list, split.json) in DST/.clfkit-split-partial."""
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    counts = {c: {s: 0 for s in SPLITS} for c in meta["classes"]}
    fallbacks = 0
    records.sort(key=lambda r: (r.class_name, r.relpath))
    for rec in tqdm(records, desc="writing split", unit="img", disable=progress is False):
        split = plan[(rec.class_name, rec.relpath)]
        fallbacks += _place(src / rec.class_name / rec.relpath, partial / split / rec.class_name / rec.relpath, mode)
        counts[rec.class_name][split] += 1
    for split in SPLITS:
        (partial / split).mkdir(exist_ok=True)
    # Manifest order: split, class, path.  Rows are made while writing, not held (one record per file is).
    records.sort(key=lambda r: SPLITS.index(plan[(r.class_name, r.relpath)]))  # stable: class, path stay sorted
    groups = _names(near.groups) if near else []
    group_of = {name: group[0] for group in groups for name in group}
    rows = ((f"{plan[(r.class_name, r.relpath)]}/{r.class_name}/{r.relpath}", r.class_name,
             plan[(r.class_name, r.relpath)], r.sha256, r.width, r.height, f"{r.class_name}/{r.relpath}",
             group_of.get(f"{r.class_name}/{r.relpath}", ""))
            for r in records)
    dups = [[f"{r.class_name}/{r.relpath}" for r in group] for group in cross_class_duplicates(records).values()]
    write_csv(partial / "manifest.csv", MANIFEST_COLUMNS, rows)
    write_csv(partial / "quarantine.csv", ("source", "class", "reason"), sorted(quarantined))
    meta = {**meta, "counts": counts, "quarantined": len(quarantined), "cross_class_duplicates": dups,
            "near_duplicate_rule": near.rule.describe() if near else None,
            "near_duplicate_groups": groups,
            "cross_class_near_duplicates": _names(near.cross_class) if near else []}
    write_json(meta, partial / "split.json")
    return counts, fallbacks, dups


def _swap_into_place(partial: Path, dst: Path) -> None:
    """Move the finished split into DST only now: an interrupted run never leaves a half split there."""
    for name in OUTPUT_NAMES:
        target = dst / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(partial / name, target)
    partial.rmdir()


def format_summary(result: SplitResult) -> str:
    """A class × split table with totals, then what was dropped, quarantined or duplicated."""
    width = max([len("class"), len("total"), *(len(c) for c in result.classes)])
    header = f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in (*SPLITS, "total"))
    lines = [header, "-" * len(header)]
    totals = {s: 0 for s in SPLITS}
    for name in result.classes:
        c = result.counts[name]
        for s in SPLITS:
            totals[s] += c[s]
        lines.append(f"{name:<{width}}  " + "  ".join(f"{c[s]:>6}" for s in SPLITS) + f"  {sum(c.values()):>6}")
    lines.append("-" * len(header))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals[s]:>6}" for s in SPLITS)
                 + f"  {sum(totals.values()):>6}")
    if result.dropped_classes:
        lines.append("dropped (below --min-images): "
                     + ", ".join(f"{c} ({n})" for c, n in sorted(result.dropped_classes.items())))
    if result.empty_classes:
        lines.append("empty class folders (no readable images): " + ", ".join(result.empty_classes))
    if result.quarantined:
        lines.append(f"quarantined {len(result.quarantined)} unreadable file(s): see {result.dst / 'quarantine.csv'}")
    for group in result.cross_class_duplicates:
        lines.append("same photo in several classes (kept in train only): " + " = ".join(group))
    if result.near_duplicate_groups:
        lines.append(f"near-duplicates: {len(result.near_duplicate_groups)} groups "
                     f"({sum(map(len, result.near_duplicate_groups))} photos) kept on one side; see "
                     f"{result.dst / 'split.json'}")
    for group in result.cross_class_near_duplicates:
        lines.append("near-identical photos in several classes (kept in train only; check the labels): "
                     + " ~ ".join(group))
    if result.copied_instead_of_linked:
        lines.append(f"{result.copied_instead_of_linked} file(s) copied: hard links are not possible across filesystems")
    return "\n".join(lines)
