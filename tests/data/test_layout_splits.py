"""read_split_folders / drop_unreadable: the data is checked once, before any model work, and every problem
is reported in one error that names the folder and the classes involved."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers import draw_image, corrupt_jpeg

from clfkit.errors import DataError
from clfkit.data.layout import Sample, drop_unreadable, read_split_folders


def _write(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    """root/<split>/<class>/img_i.jpg with layout[split][class] images (0 → an empty class folder)."""
    for split, classes in layout.items():
        for k, (name, count) in enumerate(sorted(classes.items())):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                draw_image(100 * k + i, kind=k).save(folder / f"img_{i}.jpg")
    return root


def test_happy_path_sorted_classes_and_labels(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"zebra": 3, "ant": 2, "moth": 1},
                                      "val": {"zebra": 1, "ant": 1, "moth": 1},
                                      "test": {"zebra": 2, "ant": 1, "moth": 1}})
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    data = read_split_folders(root)
    assert data.class_names == ("ant", "moth", "zebra")
    assert set(data.splits) == {"train", "val", "test"}
    assert data.counts("train") == {"ant": 2, "moth": 1, "zebra": 3}
    assert data.counts("test") == {"ant": 1, "moth": 1, "zebra": 2}
    for split, samples in data.splits.items():
        for sample in samples:
            assert data.class_names[sample.label] == sample.path.parent.name
            assert sample.path.parent.parent.name == split
    assert data.skipped == []


def test_test_split_is_optional(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1}})
    assert set(read_split_folders(root).splits) == {"train", "val"}


def test_missing_data_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=f"{missing}: data folder not found.*clf-split"):
        read_split_folders(missing)


def test_missing_val_points_to_auto_split(tmp_path: Path) -> None:
    root = _write(tmp_path / "photos", {"train": {"a": 2, "b": 2}})
    with pytest.raises(DataError, match="val is missing.*--auto-split"):
        read_split_folders(root)


def test_plain_class_folder_points_to_auto_split(tmp_path: Path) -> None:
    root = _write(tmp_path, {"cats": {"x": 1}, "dogs": {"x": 1}})  # cats/x, dogs/x: no train/val layout
    with pytest.raises(DataError, match="train, val is missing.*--auto-split"):
        read_split_folders(root)


def test_class_only_in_val_is_named(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 2}, "val": {"a": 1, "b": 1, "stowaway": 1}})
    with pytest.raises(DataError, match="only in val, not in train: stowaway"):
        read_split_folders(root)


def test_class_without_val_images_is_named(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 2, "lonely": 2}, "val": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match="no val images: lonely"):
        read_split_folders(root)


def test_empty_train_class_folder_is_named(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 2, "hollow": 0}, "val": {"a": 1, "b": 1}})
    with pytest.raises(DataError, match="empty class folder.*in train: hollow"):
        read_split_folders(root)


def test_all_problems_in_one_error(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 2, "hollow": 0},
                                      "val": {"a": 1, "extra": 1},
                                      "test": {"a": 1, "b": 1}})
    with pytest.raises(DataError) as info:
        read_split_folders(root)
    message = str(info.value)
    assert "\n" not in message
    for part in ("hollow", "only in val, not in train: extra", "no val images: b"):
        assert part in message


def test_train_without_any_image(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 0}, "val": {"a": 1}})
    with pytest.raises(DataError, match="train"):
        read_split_folders(root)


def test_drop_unreadable_records_split_path_reason(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 3, "b": 2}, "val": {"a": 1, "b": 1}})
    bad = corrupt_jpeg(root / "train" / "a" / "broken.jpg")
    empty = root / "val" / "b" / "empty.jpg"
    empty.write_bytes(b"")
    data = read_split_folders(root)
    assert Sample(bad, 0) in data.splits["train"]
    data = drop_unreadable(data, workers=1)
    assert [s.path for s in data.splits["train"] if s.path == bad] == []
    assert data.counts("train") == {"a": 3, "b": 2}
    assert data.counts("val") == {"a": 1, "b": 1}
    assert {(split, path) for split, path, _ in data.skipped} == {("train", str(bad)), ("val", str(empty))}
    reasons = {path: reason for _, path, reason in data.skipped}
    assert "empty" in reasons[str(empty)] and reasons[str(bad)]


def test_drop_unreadable_refuses_a_class_left_without_images(tmp_path: Path) -> None:
    root = _write(tmp_path / "data", {"train": {"a": 2, "b": 0}, "val": {"a": 1, "b": 1}})
    corrupt_jpeg(root / "train" / "b" / "only.jpg")
    data = read_split_folders(root)
    with pytest.raises(DataError, match="no readable training images left for class.*b"):
        drop_unreadable(data, workers=1)
