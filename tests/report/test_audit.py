"""clfkit.report.audit: folds that keep copies together, the ranking of suspects, the CSV and the grid.  No torch."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_runs_without_torch, draw_image
from PIL import Image

from clfkit.report.audit import (AUDIT_COLUMNS, AuditItem, fold_assignment, grid_caption, rank_label_issues,
                                 unit_ids, write_label_grid, write_label_issues)

NAMES = ("cat", "dog", "owl")


def _items(n: int) -> list[AuditItem]:
    return [AuditItem(path=f"src/{i:03d}.jpg", file=f"/data/train/x/{i:03d}.jpg", split="train" if i % 4 else "val")
            for i in range(n)]


def test_unit_ids_join_samples_that_share_any_tag_transitively():
    units = unit_ids([["sha:1"], ["sha:1", "group:g"], ["group:g"], [""], ["sha:2"], ["", "sha:2"], []])
    assert units[0] == units[1] == units[2]  # 0~1 by bytes, 1~2 by group
    assert units[4] == units[5]
    assert len({units[0], units[3], units[4], units[6]}) == 4  # an empty tag joins nothing


def test_folds_keep_every_unit_whole_and_balance_each_class():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    tags = [[f"g{i // 3}"] if i < 60 else [] for i in range(300)]  # 20 groups of 3 among the first 60
    units = unit_ids(tags)
    folds = fold_assignment(labels, units, 5, seed=0)
    assert set(folds.tolist()) == set(range(5))
    for u in np.unique(units):
        assert len(set(folds[units == u].tolist())) == 1, "a near-duplicate group was split across folds"
    for c in range(3):
        per_fold = np.bincount(folds[labels == c], minlength=5)
        assert per_fold.max() - per_fold.min() <= 3, per_fold  # groups of 3 are the only imbalance
    assert np.array_equal(folds, fold_assignment(labels, units, 5, seed=0))  # deterministic
    assert not np.array_equal(folds, fold_assignment(labels, units, 5, seed=1))  # and seeded


def test_fold_assignment_rejects_bad_input():
    with pytest.raises(ValueError, match="folds must be at least 2"):
        fold_assignment([0, 1], [0, 1], 1)
    with pytest.raises(ValueError, match="differ in shape"):
        fold_assignment([0, 1], [0], 2)


def test_ranking_puts_cross_class_copies_first_then_the_lowest_margin():
    probs = np.array([
        [0.90, 0.05, 0.05],  # 0: cat, agrees
        [0.05, 0.90, 0.05],  # 1: given cat, the model says dog confidently
        [0.40, 0.45, 0.15],  # 2: given cat, narrowly dog
        [0.10, 0.80, 0.10],  # 3: given dog, agrees — but a copy of it is filed under owl
        [0.10, 0.80, 0.10],  # 4: the owl copy of 3
        [0.20, 0.10, 0.70],  # 5: owl, agrees
    ])
    labels = [0, 0, 0, 1, 2, 2]
    items = _items(6)
    rows = rank_label_issues(probs, labels, NAMES, items, folds=[0, 1, 2, 3, 3, 4],
                             cross_class_groups=[[items[3].path, items[4].path]])
    assert [r.rank for r in rows] == [1, 2, 3, 4, 5, 6]
    assert [r.path for r in rows] == [items[i].path for i in (4, 3, 1, 2, 5, 0)]
    copy_owl, copy_dog, worst = rows[0], rows[1], rows[2]
    assert copy_owl.cross_class_group == copy_dog.cross_class_group == items[3].path
    assert (copy_owl.given_label, copy_owl.suggested_label) == ("owl", "dog")
    assert copy_owl.margin == pytest.approx(0.1 - 0.8) and copy_owl.fold == 3
    assert (worst.given_label, worst.suggested_label) == ("cat", "dog")
    assert worst.given_prob == pytest.approx(0.05) and worst.suggested_prob == pytest.approx(0.90)
    assert worst.disagrees and not rows[-1].disagrees
    assert rows[-1].suggested_label in ("dog", "owl") and rows[-1].margin == pytest.approx(0.85)
    assert all(r.cross_class_group == "" for r in rows[2:])
    assert rows[2].split == items[1].split and rows[2].file == items[1].file


def test_ranking_checks_that_its_inputs_describe_the_same_images():
    with pytest.raises(ValueError, match="same 2 images of 3 classes"):
        rank_label_issues(np.full((3, 3), 1 / 3), [0, 1, 2], NAMES, _items(2), [0, 1, 2])


def test_csv_has_the_documented_columns_in_rank_order(tmp_path: Path):
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [0.5, 0.3, 0.2]])
    rows = rank_label_issues(probs, [0, 2, 1], NAMES, _items(3), [0, 1, 2])
    path = write_label_issues(rows, tmp_path / "report" / "label_issues.csv")
    with open(path, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert tuple(table[0]) == AUDIT_COLUMNS == ("rank", "path", "given_label", "suggested_label", "given_prob",
                                                 "suggested_prob", "margin", "split", "fold", "cross_class_group",
                                                 "file")
    assert [int(r["rank"]) for r in table] == [1, 2, 3]
    assert table[0]["path"] == "src/001.jpg" and table[0]["given_label"] == "owl"
    assert table[0]["suggested_label"] == "dog" and float(table[0]["margin"]) == pytest.approx(-0.3)
    assert [float(r["margin"]) for r in table] == sorted(float(r["margin"]) for r in table)


def test_grid_shows_only_the_suspects_with_given_arrow_suggested(tmp_path: Path):
    files = []
    for i in range(4):
        files.append(tmp_path / f"{i}.png")
        draw_image(i, (40, 32), kind=i).save(files[-1])
    items = [AuditItem(path=f"x/{i}.png", file=str(f), split="train") for i, f in enumerate(files)]
    probs = np.array([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    rows = rank_label_issues(probs, [0, 0, 0, 0], NAMES, items, [0, 1, 2, 3])
    assert grid_caption(rows[0]) == "cat → dog (0.80)\n1.png"
    assert grid_caption(rows[-1]) == "cat ✓ (0.90)\n0.png"  # the model agrees: no arrow to a wrong class
    path, drawn = write_label_grid(rows, tmp_path / "grid" / "label_issues.png")
    assert drawn == 2  # the two photos the model would relabel; the two it agrees with are not drawn
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200


def test_audit_module_imports_without_torch():
    assert_runs_without_torch("import clfkit.report.audit, clfkit.data.manifest\n")
