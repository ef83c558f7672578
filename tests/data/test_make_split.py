"""make_split on generated folders: layout, manifest, determinism, leakage, quarantine and destination safety."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from PIL import Image

from clfkit.data.make_split import MANIFEST_COLUMNS, format_summary, make_split
from clfkit.data.split import SPLITS, split_counts
from clfkit.errors import ClfError, ConfigError, DataError

from helpers import draw_image, make_labelled_folder

SIZES = {"cat": 10, "dog": 7, "owl": 4}


def run(src: Path, dst: Path, **kw):
    kw.setdefault("progress", False)
    kw.setdefault("workers", 2)
    return make_split(src, dst, **kw)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def split_files(dst: Path) -> set[str]:
    """Every file (or link) under dst/{train,val,test}, as POSIX paths relative to dst."""
    found = set()
    for split in SPLITS:
        for dirpath, _, names in os.walk(dst / split):
            for name in names:
                found.add((Path(dirpath) / name).relative_to(dst).as_posix())
    return found


def assert_no_leakage(dst: Path) -> None:
    splits_of = defaultdict(set)
    for row in read_csv(dst / "manifest.csv"):
        splits_of[row["sha256"]].add(row["split"])
    leaked = {h: s for h, s in splits_of.items() if len(s) > 1}
    assert not leaked, f"same bytes in several splits: {leaked}"


def jpeg_bytes(seed: int) -> bytes:
    buf = io.BytesIO()
    draw_image(seed).save(buf, "JPEG")
    return buf.getvalue()


@pytest.fixture
def src(tiny_folder: Path) -> Path:
    return tiny_folder


# --- layout and manifest -------------------------------------------------------------------------------------

def test_writes_split_folders_and_a_correct_manifest(src, tmp_path):
    dst = tmp_path / "data"
    result = run(src, dst, seed=0)

    for split in SPLITS:
        assert (dst / split).is_dir()
    for name in SIZES:
        assert (dst / "train" / name).is_dir()
    assert sorted(p.name for p in dst.iterdir()) == sorted(["manifest.csv", "quarantine.csv", "split.json", *SPLITS])

    with open(dst / "manifest.csv", newline="", encoding="utf-8") as fh:
        assert next(csv.reader(fh)) == list(MANIFEST_COLUMNS) == [
            "path", "class", "split", "sha256", "width", "height", "source", "group"]
    rows = read_csv(dst / "manifest.csv")
    assert len(rows) == sum(SIZES.values())
    assert {r["group"] for r in rows} == {""}  # draw_image photos are different pictures: no near-duplicates
    for row in rows:
        split, cls, *rest = row["path"].split("/")
        assert (split, cls) == (row["split"], row["class"])
        assert row["source"] == f"{cls}/{'/'.join(rest)}"
        assert sha256(dst / row["path"]) == row["sha256"] == sha256(src / row["source"])
        with Image.open(dst / row["path"]) as im:
            assert im.size == (int(row["width"]), int(row["height"])) == (48, 40)
    # Every file in DST is in the manifest and vice versa; every source image is used exactly once.
    assert split_files(dst) == {r["path"] for r in rows}
    assert sorted(r["source"] for r in rows) == sorted(
        p.relative_to(src).as_posix() for p in src.rglob("*.jpg"))

    # Counts follow the rounding rule, and the result, the manifest and split.json agree.
    for name, n in SIZES.items():
        expected = dict(zip(SPLITS, split_counts(n, 0.15, 0.15)))
        assert result.counts[name] == expected
        assert {s: sum(1 for r in rows if r["class"] == name and r["split"] == s) for s in SPLITS} == expected
    meta = json.loads((dst / "split.json").read_text())
    assert meta["seed"] == 0 and meta["val"] == 0.15 and meta["test"] == 0.15
    assert meta["classes"] == sorted(SIZES) == result.classes
    assert meta["counts"] == result.counts
    assert meta["quarantined"] == 0 and meta["dropped_classes"] == {} and meta["empty_classes"] == []
    assert read_csv(dst / "quarantine.csv") == []
    assert not (dst / ".clfkit-split-partial").exists()


def test_summary_table_has_every_class_and_totals(src, tmp_path):
    result = run(src, tmp_path / "data")
    lines = format_summary(result).splitlines()
    assert lines[0].split() == ["class", *SPLITS, "total"]
    body = {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines if line.split()[0] in SIZES}
    for name, n in SIZES.items():
        assert body[name] == [*split_counts(n, 0.15, 0.15), n]
    total = next(line for line in lines if line.startswith("total")).split()[1:]
    assert [int(v) for v in total] == [sum(body[c][k] for c in SIZES) for k in range(4)]
    assert int(total[-1]) == sum(SIZES.values())


def test_custom_fractions(src, tmp_path):
    result = run(src, tmp_path / "data", val=0.0, test=0.3)
    for name, n in SIZES.items():
        assert result.counts[name] == dict(zip(SPLITS, split_counts(n, 0.0, 0.3)))
        assert result.counts[name]["val"] == 0
    assert (tmp_path / "data" / "val").is_dir()  # present even when empty, so training finds the layout


# --- determinism ---------------------------------------------------------------------------------------------

def test_same_seed_gives_byte_identical_outputs(src, tmp_path):
    run(src, tmp_path / "a", seed=7)
    run(src, tmp_path / "b", seed=7, mode="copy", workers=1)
    for name in ("manifest.csv", "split.json", "quarantine.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert split_files(tmp_path / "a") == split_files(tmp_path / "b")


def test_a_different_seed_changes_the_assignment(src, tmp_path):
    run(src, tmp_path / "a", seed=0)
    run(src, tmp_path / "b", seed=1)
    assert split_files(tmp_path / "a") != split_files(tmp_path / "b")
    a, b = read_csv(tmp_path / "a" / "manifest.csv"), read_csv(tmp_path / "b" / "manifest.csv")
    count = lambda rows: sorted((r["class"], r["split"]) for r in rows)  # noqa: E731
    assert count(a) == count(b)  # same sizes per class and split
    assert json.loads((tmp_path / "b" / "split.json").read_text())["seed"] == 1


# --- leakage -------------------------------------------------------------------------------------------------

def test_duplicates_never_straddle_splits(tmp_path):
    src = make_labelled_folder(tmp_path / "images", {"cat": 12, "dog": 12})
    shutil.copyfile(src / "cat" / "img_000.jpg", src / "cat" / "img_000 copy.jpg")
    (src / "cat" / "more").mkdir()
    shutil.copyfile(src / "cat" / "img_000.jpg", src / "cat" / "more" / "again.jpg")
    shutil.copyfile(src / "cat" / "img_001.jpg", src / "dog" / "shared.jpg")  # same photo, two labels
    for seed in range(4):
        dst = tmp_path / f"data{seed}"
        result = run(src, dst, seed=seed)
        assert_no_leakage(dst)
        rows = {r["source"]: r for r in read_csv(dst / "manifest.csv")}
        copies = {rows[s]["split"] for s in ("cat/img_000.jpg", "cat/img_000 copy.jpg", "cat/more/again.jpg")}
        assert len(copies) == 1
        assert rows["cat/img_001.jpg"]["split"] == rows["dog/shared.jpg"]["split"] == "train"
        assert result.cross_class_duplicates == [["cat/img_001.jpg", "dog/shared.jpg"]]
        assert json.loads((dst / "split.json").read_text())["cross_class_duplicates"] == [
            ["cat/img_001.jpg", "dog/shared.jpg"]]
    summary = format_summary(result)
    assert "cat/img_001.jpg" in summary and "dog/shared.jpg" in summary and "train" in summary


# --- unreadable files, small and empty classes ---------------------------------------------------------------

def test_unreadable_files_are_quarantined_not_copied(src, tmp_path):
    good = jpeg_bytes(99)
    (src / "cat" / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (src / "cat" / "empty.jpg").write_bytes(b"")
    (src / "dog" / "page.png").write_text("<html>404</html>")
    os.symlink(src / "nowhere.jpg", src / "dog" / "dangling.jpg")
    dst = tmp_path / "data"
    messages = []
    result = run(src, dst, log=messages.append)

    rows = read_csv(dst / "quarantine.csv")
    assert list(rows[0]) == ["source", "class", "reason"]
    reasons = {r["source"]: (r["class"], r["reason"]) for r in rows}
    assert set(reasons) == {"cat/truncated.jpg", "cat/empty.jpg", "dog/page.png", "dog/dangling.jpg"}
    assert reasons["cat/empty.jpg"][0] == "cat" and "empty" in reasons["cat/empty.jpg"][1]
    assert "truncated" in reasons["cat/truncated.jpg"][1]
    assert "not an image" in reasons["dog/page.png"][1]
    assert "symbolic link" in reasons["dog/dangling.jpg"][1]
    assert all(reason for _, reason in reasons.values())

    names = {Path(p).name for p in split_files(dst)}
    assert not names & {"truncated.jpg", "empty.jpg", "page.png", "dangling.jpg"}
    assert {r["source"] for r in read_csv(dst / "manifest.csv")}.isdisjoint(reasons)
    assert len(result.quarantined) == 4
    assert json.loads((dst / "split.json").read_text())["quarantined"] == 4
    assert result.counts["cat"] == dict(zip(SPLITS, split_counts(10, 0.15, 0.15)))  # counted on readable ones
    assert "quarantined 4" in format_summary(result)
    assert len(messages) == 4 and all("skipped" in m for m in messages)


def test_file_name_that_is_not_utf8_is_quarantined(src, tmp_path):
    # Latin-1 names from old zip files: the UTF-8 manifest cannot list them, so they must not crash the split.
    (src / "cat").joinpath(os.fsdecode(b"caf\xe9.jpg")).write_bytes(jpeg_bytes(5))
    dst = tmp_path / "data"
    result = run(src, dst)
    assert len(result.quarantined) == 1 and "UTF-8" in result.quarantined[0][2]
    rows = read_csv(dst / "quarantine.csv")  # still valid UTF-8
    assert rows[0]["source"].startswith("cat/caf") and "UTF-8" in rows[0]["reason"]
    assert result.counts["cat"] == dict(zip(SPLITS, split_counts(10, 0.15, 0.15)))


def test_min_images_drops_small_classes(src, tmp_path):
    dst = tmp_path / "data"
    result = run(src, dst, min_images=5)
    assert result.classes == ["cat", "dog"]
    assert result.dropped_classes == {"owl": 4}
    assert not (dst / "train" / "owl").exists()
    assert "owl" not in {r["class"] for r in read_csv(dst / "manifest.csv")}
    meta = json.loads((dst / "split.json").read_text())
    assert meta["dropped_classes"] == {"owl": 4} and meta["classes"] == ["cat", "dog"]
    assert "owl (4)" in format_summary(result) and "--min-images" in format_summary(result)


def test_min_images_counts_readable_images_only(src, tmp_path):
    (src / "owl" / "broken.jpg").write_bytes(b"")
    result = run(src, tmp_path / "data", min_images=5)
    assert result.dropped_classes == {"owl": 4}


def test_no_class_big_enough_is_an_error(src, tmp_path):
    with pytest.raises(DataError, match="at least 50"):
        run(src, tmp_path / "data", min_images=50)
    assert not (tmp_path / "data" / "manifest.csv").exists()


def test_empty_class_folders_are_reported(src, tmp_path):
    (src / "empty_class").mkdir()
    (src / "only_junk").mkdir()
    (src / "only_junk" / "notes.txt").write_text("not a photo")
    (src / "only_junk" / ".DS_Store").write_bytes(b"\0")
    dst = tmp_path / "data"
    result = run(src, dst)
    assert result.empty_classes == ["empty_class", "only_junk"]
    assert result.classes == sorted(SIZES)
    assert json.loads((dst / "split.json").read_text())["empty_classes"] == ["empty_class", "only_junk"]
    assert "empty class folders" in format_summary(result) and "empty_class" in format_summary(result)
    assert not (dst / "train" / "empty_class").exists()


def test_hidden_and_loose_files_are_ignored(src, tmp_path):
    (src / ".DS_Store").write_bytes(b"\0\0")
    (src / "README.txt").write_text("my photos")
    draw_image(1).save(src / "loose.jpg")  # a real image, but not in a class folder
    (src / "cat" / ".DS_Store").write_bytes(b"\0")
    (src / "cat" / "._img_000.jpg").write_bytes(b"\0\5\26\7AppleDouble")  # macOS resource fork, not a JPEG
    (src / "cat" / "notes.txt").write_text("x")
    (src / "cat" / ".thumbnails").mkdir()
    draw_image(2).save(src / "cat" / ".thumbnails" / "t.jpg")
    (src / "__MACOSX" / "cat").mkdir(parents=True)
    draw_image(3).save(src / "__MACOSX" / "cat" / "img.jpg")
    (src / ".trash").mkdir()
    draw_image(4).save(src / ".trash" / "x.jpg")
    dst = tmp_path / "data"
    result = run(src, dst)
    assert result.classes == sorted(SIZES)
    assert result.quarantined == [] and result.empty_classes == []
    rows = read_csv(dst / "manifest.csv")
    assert len(rows) == sum(SIZES.values())
    assert all(Path(r["source"]).name.startswith("img_") for r in rows)


def test_nested_subfolders_keep_their_relative_paths(tmp_path):
    src = tmp_path / "images"
    nested = ["2019/summer/a.jpg", "2019/summer/b.jpg", "2019/winter/c.jpg", "2020/d.jpg", "e.jpg", "f.jpg"]
    for k, rel in enumerate(nested):
        (src / "kayak" / rel).parent.mkdir(parents=True, exist_ok=True)
        draw_image(k).save(src / "kayak" / rel)
    dst = tmp_path / "data"
    run(src, dst, mode="copy")
    rows = read_csv(dst / "manifest.csv")
    assert sorted(r["source"] for r in rows) == sorted(f"kayak/{rel}" for rel in nested)
    for row in rows:
        rel = row["source"].split("/", 1)[1]
        assert row["path"] == f"{row['split']}/kayak/{rel}"
        assert (dst / row["path"]).read_bytes() == (src / row["source"]).read_bytes()


# --- link modes ----------------------------------------------------------------------------------------------

def test_hardlink_mode_links_and_copy_mode_copies(src, tmp_path):
    linked, copied = tmp_path / "linked", tmp_path / "copied"
    result = run(src, linked, mode="hardlink")
    assert result.copied_instead_of_linked == 0
    run(src, copied, mode="copy")
    for row in read_csv(linked / "manifest.csv"):
        source = src / row["source"]
        assert os.stat(linked / row["path"]).st_ino == os.stat(source).st_ino
        copy = copied / row["path"]
        assert not copy.is_symlink()
        assert os.stat(copy).st_ino != os.stat(source).st_ino
        assert copy.read_bytes() == source.read_bytes()


def test_symlink_mode(src, tmp_path):
    dst = tmp_path / "data"
    run(src, dst, mode="symlink")
    for row in read_csv(dst / "manifest.csv"):
        link = dst / row["path"]
        assert link.is_symlink()
        assert Path(os.readlink(link)).is_absolute()
        assert link.resolve() == (src / row["source"]).resolve()


def test_unknown_mode_is_a_config_error(src, tmp_path):
    with pytest.raises(ConfigError, match="--mode"):
        run(src, tmp_path / "data", mode="move")
    assert not (tmp_path / "data").exists()


# --- destination safety --------------------------------------------------------------------------------------

def test_refuses_a_non_empty_destination(src, tmp_path):
    dst = tmp_path / "data"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="--overwrite"):
        run(src, dst)
    # --overwrite only replaces a previous split: it never deletes the user's other files.
    with pytest.raises(DataError, match="notes.txt"):
        run(src, dst, overwrite=True)
    assert (dst / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in dst.iterdir()) == ["notes.txt"]


def test_an_empty_destination_folder_is_fine(src, tmp_path):
    dst = tmp_path / "data"
    dst.mkdir()
    run(src, dst)
    assert (dst / "manifest.csv").is_file()


def test_destination_that_is_a_file(src, tmp_path):
    dst = tmp_path / "data"
    dst.write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        run(src, dst)


def test_overwrite_replaces_a_previous_split(src, tmp_path):
    dst = tmp_path / "data"
    run(src, dst, seed=0)
    first = (dst / "manifest.csv").read_bytes()
    with pytest.raises(DataError, match="--overwrite"):
        run(src, dst, seed=1)
    assert (dst / "manifest.csv").read_bytes() == first  # a refused run leaves the old split alone

    shutil.rmtree(src / "owl")  # the new split has one class less and a different seed
    run(src, dst, seed=1, overwrite=True)
    rows = read_csv(dst / "manifest.csv")
    assert split_files(dst) == {r["path"] for r in rows}  # nothing stale left behind
    assert not any((dst / s / "owl").exists() for s in SPLITS)
    assert json.loads((dst / "split.json").read_text())["seed"] == 1
    fresh = tmp_path / "fresh"
    run(src, fresh, seed=1)
    assert (fresh / "manifest.csv").read_bytes() == (dst / "manifest.csv").read_bytes()


@pytest.mark.parametrize("where", ["inside", "same", "parent"])
def test_refuses_destination_inside_or_around_source(src, tmp_path, where):
    dst = {"inside": src / "cat" / "split", "same": src, "parent": src.parent}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ClfError, match="outside SRC"):
        run(src, dst, overwrite=True)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_missing_source(tmp_path):
    with pytest.raises(DataError, match="not found"):
        run(tmp_path / "nope", tmp_path / "data")


def test_source_without_class_folders(tmp_path):
    src = tmp_path / "flat"
    src.mkdir()
    draw_image(0).save(src / "a.jpg")
    with pytest.raises(DataError, match="no class folders"):
        run(src, tmp_path / "data")


@pytest.mark.parametrize("kw, flag", [(dict(val=1.5), "--val"), (dict(test=-1.0), "--test"),
                                      (dict(min_images=0), "--min-images")])
def test_bad_options_fail_before_writing(src, tmp_path, kw, flag):
    with pytest.raises(ConfigError, match=flag):
        run(src, tmp_path / "data", **kw)
    assert not (tmp_path / "data").exists()


# --- file names ----------------------------------------------------------------------------------------------

WEIRD_NAMES = ["my boat.jpg", "it's \"quoted\".jpg", "bateau à voile ⛵ 船.jpg", "$(touch pwned).jpg",
               "`touch pwned`.jpg", "; touch pwned;.jpg", "comma, and \"csv\".jpg", "line\nbreak.jpg", "-rf.jpg"]


def test_weird_file_names_are_copied_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "images"
    for folder in ("sail boat", "$(touch pwned)"):
        (src / folder).mkdir(parents=True)
        for k, name in enumerate(WEIRD_NAMES):
            draw_image(k + len(folder)).save(src / folder / name, "JPEG")
    dst = tmp_path / "data"
    for mode in ("copy", "hardlink", "symlink"):
        result = run(src, dst, mode=mode, overwrite=True)
        assert result.quarantined == []
        rows = read_csv(dst / "manifest.csv")
        expected = {f"{folder}/{name}" for folder in ("sail boat", "$(touch pwned)") for name in WEIRD_NAMES}
        assert {r["source"] for r in rows} == expected  # the CSV round-trips quotes, commas and newlines
        for row in rows:
            assert (dst / row["path"]).read_bytes() == (src / row["source"]).read_bytes()
    assert not (tmp_path / "pwned").exists() and not Path.cwd().joinpath("pwned").exists()
    assert not [p for p in tmp_path.rglob("pwned")]
    assert "$(touch pwned)" in format_summary(result)
