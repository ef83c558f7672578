"""Near-duplicates in clf-split: a shifted, brightened, re-compressed copy shares its original's split; other
objects on the same plain sheet are not grouped; cross-class copies stay in train; turning it off gives the
byte-identical-only plan; split.json, the manifest and the summary say what was grouped."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw, ImageEnhance

from clfkit.cli.split import split_cmd
from clfkit.data.make_split import format_summary, inspect_file, make_split
from clfkit.data.split import FileRecord, find_near_duplicates, plan_split, split_counts

SHEET = (160, 128)


def sheet(seed: int) -> Image.Image:
    """The same white posterboard for every photo: a soft lighting gradient plus sensor noise."""
    w, h = SHEET
    yy, xx = np.mgrid[0:h, 0:w]
    level = 228 + 20 * (xx / w - 0.5) - 10 * (yy / h)
    pixels = level[..., None] * np.array([1.0, 0.99, 0.97]) + np.random.default_rng(seed).normal(0, 3, (h, w, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def object_photo(k: int) -> Image.Image:
    """Object ``k`` (a disc, box or triangle of its own colour, size and place) on the sheet."""
    rng = random.Random(f"object:{k}")
    w, h = SHEET
    image = sheet(k)
    draw = ImageDraw.Draw(image)
    cx, cy, r = rng.uniform(0.3, 0.7) * w, rng.uniform(0.3, 0.7) * h, rng.uniform(0.18, 0.3) * min(w, h)
    colour = tuple(rng.randint(20, 200) for _ in range(3))
    box = [cx - r * rng.uniform(0.6, 1.6), cy - r, cx + r * rng.uniform(0.6, 1.6), cy + r]
    if k % 3 == 2:
        draw.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=colour)
    else:
        [draw.ellipse, draw.rectangle][k % 3](box, fill=colour)
    draw.line([(box[0], box[1]), (box[2], box[3])], fill=tuple(255 - c for c in colour), width=2)
    return image


def twin(image: Image.Image) -> Image.Image:
    """The next shot: moved by (2, 1) pixels, 6 % brighter (saved as JPEG by the caller, at another quality)."""
    moved = Image.new("RGB", image.size, image.getpixel((0, 0)))
    moved.paste(image, (2, 1))
    return ImageEnhance.Brightness(moved).enhance(1.06)


def save(image: Image.Image, path: Path, quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, "JPEG", quality=quality)
    return path


def make_folder(root: Path, per_class: int = 10) -> Path:
    """mug/ and can/: ``per_class`` different objects each; mug/obj_000 has a twin, can/obj_003 two."""
    for c, name in enumerate(("can", "mug")):
        for i in range(per_class):
            save(object_photo(100 * c + i), root / name / f"obj_{i:03d}.jpg")
    save(twin(object_photo(100)), root / "mug" / "obj_000_again.jpg", quality=70)
    save(twin(object_photo(3)), root / "can" / "obj_003_b.jpg", quality=70)
    save(twin(twin(object_photo(3))), root / "can" / "obj_003_c.jpg", quality=75)
    return root


def records_of(root: Path) -> list[FileRecord]:
    out = []
    for path in sorted(root.rglob("*.jpg")):
        cls = path.relative_to(root).parts[0]
        rec = inspect_file(path, root / cls, cls)
        assert isinstance(rec, FileRecord)
        out.append(rec)
    return out


def strip(records: list[FileRecord]) -> list[FileRecord]:
    """The records without signatures: what the planner saw before near-duplicates existed."""
    return [FileRecord(r.class_name, r.relpath, r.sha256, r.width, r.height) for r in records]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "images")


# --- finding them --------------------------------------------------------------------------------------------

def test_twins_are_found_and_different_objects_on_the_same_sheet_are_not(folder):
    near = find_near_duplicates(records_of(folder))
    assert near.groups == [
        [("can", "obj_003.jpg"), ("can", "obj_003_b.jpg"), ("can", "obj_003_c.jpg")],
        [("mug", "obj_000.jpg"), ("mug", "obj_000_again.jpg")],
    ]
    assert near.cross_class == []


def test_many_different_objects_on_one_sheet_stay_apart(tmp_path):
    root = tmp_path / "images"
    for k in range(40):
        save(object_photo(1000 + k), root / "things" / f"{k:03d}.jpg")
    assert find_near_duplicates(records_of(root)).groups == []


def test_finding_does_not_depend_on_input_order(folder):
    records = records_of(folder)
    first = find_near_duplicates(records)
    for seed in range(3):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert find_near_duplicates(shuffled) == first


def test_byte_copies_join_their_near_duplicate_group(folder):
    (folder / "mug" / "obj_000_copy.jpg").write_bytes((folder / "mug" / "obj_000.jpg").read_bytes())
    near = find_near_duplicates(records_of(folder))
    assert [("mug", "obj_000.jpg"), ("mug", "obj_000_again.jpg"), ("mug", "obj_000_copy.jpg")] in near.groups
    # A byte copy alone is not a near-duplicate group (the byte-identical rule already covers it).
    (folder / "mug" / "obj_005_copy.jpg").write_bytes((folder / "mug" / "obj_005.jpg").read_bytes())
    assert all(("mug", "obj_005.jpg") not in g for g in find_near_duplicates(records_of(folder)).groups)


# --- planning with them --------------------------------------------------------------------------------------

def test_a_twin_lands_in_the_same_split_for_every_seed(folder):
    records = records_of(folder)
    seen = set()
    for seed in range(60):
        plan = plan_split(records, 0.2, 0.2, seed)
        assert plan[("mug", "obj_000.jpg")] == plan[("mug", "obj_000_again.jpg")], seed
        assert len({plan[("can", f"obj_003{s}.jpg")] for s in ("", "_b", "_c")}) == 1, seed
        seen.add(plan[("mug", "obj_000.jpg")])
        for name, n in (("mug", 11), ("can", 12)):
            per_split = [sum(1 for (c, _), s in plan.items() if c == name and s == split)
                         for split in ("train", "val", "test")]
            assert per_split == list(split_counts(n, 0.2, 0.2)), (seed, name)
    assert seen == {"train", "val", "test"}  # the pair is not simply parked in train


def test_without_near_duplicates_the_plan_is_the_byte_identical_one(folder):
    records = records_of(folder)
    for seed in range(20):
        old = plan_split(strip(records), 0.2, 0.2, seed)
        assert plan_split(records, 0.2, 0.2, seed, near_duplicates=False) == old
        assert plan_split(strip(records), 0.2, 0.2, seed, near_duplicates=True) == old
    split_apart = sum(plan_split(strip(records), 0.2, 0.2, s)[("mug", "obj_000.jpg")]
                      != plan_split(strip(records), 0.2, 0.2, s)[("mug", "obj_000_again.jpg")] for s in range(40))
    assert split_apart > 0  # what the grouping prevents


def test_the_plan_does_not_depend_on_input_order(folder):
    records = records_of(folder)
    plan = plan_split(records, 0.2, 0.2, seed=7)
    for seed in range(3):
        shuffled = records[:]
        random.Random(seed).shuffle(shuffled)
        assert plan_split(shuffled, 0.2, 0.2, seed=7) == plan
    near = find_near_duplicates(records)
    assert plan_split(records, 0.2, 0.2, seed=7, near_duplicates=near) == plan


def test_a_group_too_big_for_val_and_test_goes_to_train(tmp_path):
    root = tmp_path / "images"
    for i in range(8):
        save(object_photo(i), root / "mug" / f"obj_{i:03d}.jpg")
    shot = object_photo(0)
    for k in range(4):  # five shots of object 0; val and test want 2 each
        shot = twin(shot)
        save(shot, root / "mug" / f"obj_000_{k}.jpg", quality=80 - 5 * k)
    records = records_of(root)
    assert len(find_near_duplicates(records).groups[0]) == 5
    for seed in range(10):
        plan = plan_split(records, 0.15, 0.15, seed)
        assert {s for (_, p), s in plan.items() if p.startswith("obj_000")} == {"train"}
        assert sorted(plan.values()).count("val") == split_counts(12, 0.15, 0.15)[1]


def test_a_near_duplicate_in_another_class_is_kept_in_train(folder):
    save(twin(object_photo(105)), folder / "can" / "looks_like_mug_005.jpg", quality=70)
    records = records_of(folder)
    near = find_near_duplicates(records)
    assert near.cross_class == [[("can", "looks_like_mug_005.jpg"), ("mug", "obj_005.jpg")]]
    for seed in range(15):
        plan = plan_split(records, 0.2, 0.2, seed)
        assert plan[("can", "looks_like_mug_005.jpg")] == plan[("mug", "obj_005.jpg")] == "train"


# --- what make_split and clf-split write ---------------------------------------------------------------------

def test_split_json_manifest_and_summary_name_the_groups(folder, tmp_path):
    dst = tmp_path / "data"
    result = make_split(folder, dst, val=0.2, test=0.2, seed=1, progress=False, workers=2)
    groups = [["can/obj_003.jpg", "can/obj_003_b.jpg", "can/obj_003_c.jpg"],
              ["mug/obj_000.jpg", "mug/obj_000_again.jpg"]]
    assert result.near_duplicates_checked and result.near_duplicate_groups == groups
    assert result.cross_class_near_duplicates == []

    meta = json.loads((dst / "split.json").read_text())
    assert meta["near_duplicate_groups"] == groups and meta["cross_class_near_duplicates"] == []
    rule = meta["near_duplicate_rule"]
    assert rule["tight_bits"] == 8 and rule["loose_bits"] == 10 and "pHash" in rule["rule"]

    rows = {r["source"]: r for r in read_csv(dst / "manifest.csv")}
    for group in groups:
        assert {rows[name]["group"] for name in group} == {group[0]}
        assert len({rows[name]["split"] for name in group}) == 1
    assert sum(1 for r in rows.values() if r["group"]) == 5

    summary = format_summary(result)
    assert f"near-duplicates: 2 groups (5 photos) kept on one side; see {dst / 'split.json'}" in summary


def test_no_near_duplicates_restores_the_old_split(folder, tmp_path):
    result = make_split(folder, tmp_path / "off", val=0.2, test=0.2, seed=4, progress=False, workers=2,
                        near_duplicates=False)
    assert not result.near_duplicates_checked and result.near_duplicate_groups == []
    assert "near-duplicates" not in format_summary(result)
    rows = read_csv(tmp_path / "off" / "manifest.csv")
    old = plan_split(strip(records_of(folder)), 0.2, 0.2, 4)
    assert {(r["class"], r["source"].split("/", 1)[1]): r["split"] for r in rows} == old
    assert {r["group"] for r in rows} == {""}
    meta = json.loads((tmp_path / "off" / "split.json").read_text())
    assert meta["near_duplicate_rule"] is None and meta["near_duplicate_groups"] == []


def test_cli_flag(folder, tmp_path):
    on = CliRunner().invoke(split_cmd, [str(folder), str(tmp_path / "on"), "--seed", "2"])
    off = CliRunner().invoke(split_cmd, [str(folder), str(tmp_path / "off"), "--seed", "2", "--no-near-duplicates"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    assert "near-duplicates: 2 groups (5 photos)" in on.stdout and "near-duplicates" not in off.stdout
    assert json.loads((tmp_path / "off" / "split.json").read_text())["near_duplicate_groups"] == []
    help_text = CliRunner().invoke(split_cmd, ["--help"]).output
    assert "--near-duplicates / --no-near-duplicates" in help_text


def test_cross_class_near_duplicates_are_in_the_summary(folder, tmp_path):
    save(twin(object_photo(105)), folder / "can" / "looks_like_mug_005.jpg", quality=70)
    result = make_split(folder, tmp_path / "data", val=0.2, test=0.2, progress=False, workers=2)
    assert result.cross_class_near_duplicates == [["can/looks_like_mug_005.jpg", "mug/obj_005.jpg"]]
    assert "can/looks_like_mug_005.jpg ~ mug/obj_005.jpg" in format_summary(result)
    rows = {r["source"]: r for r in read_csv(tmp_path / "data" / "manifest.csv")}
    assert rows["can/looks_like_mug_005.jpg"]["split"] == rows["mug/obj_005.jpg"]["split"] == "train"
    meta = json.loads((tmp_path / "data" / "split.json").read_text())
    assert meta["cross_class_near_duplicates"] == result.cross_class_near_duplicates
