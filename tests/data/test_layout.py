"""Image picks for verification and calibration: spread over classes, labelled, found after a move."""
from __future__ import annotations

from helpers import make_labelled_folder

from clfkit.data.layout import find_split, list_images, load_images
from clfkit.data.synthetic import generated_images


def test_picks_are_round_robin_over_class_folders(tmp_path):
    make_labelled_folder(tmp_path, {"a": 5, "b": 2, "c": 1})
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a" / ".DS_Store").write_bytes(b"x")
    picked = list_images(tmp_path, 5, ["a", "b", "c"])
    assert [(p.parent.name, label) for p, label in picked] == [("a", 0), ("b", 1), ("c", 2), ("a", 0), ("b", 1)]
    assert len(list_images(tmp_path, None)) == 8


def test_labels_only_when_every_image_has_a_known_class(tmp_path):
    make_labelled_folder(tmp_path, {"a": 2, "zebra": 2})
    assert load_images(tmp_path, 10, ["a", "b"]).labels is None
    assert load_images(tmp_path, 10, ["zebra", "a"]).labels == [1, 0, 1, 0]
    (tmp_path / "a" / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    found = load_images(tmp_path, 10, ["zebra", "a"])
    assert len(found.images) == 4 and len(found.skipped) == 1 and "broken.jpg" in found.skipped[0]


def test_split_is_found_relative_to_the_checkpoint_after_a_move(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "data" / "val").mkdir(parents=True)
    checkpoint = project / "runs" / "x" / "model.pt"
    monkeypatch.chdir(tmp_path)  # "data" does not exist relative to the current folder
    assert find_split({"data": "data"}, checkpoint, "val") == project / "data" / "val"
    assert find_split({"data": str(project / "data")}, checkpoint, "val") == project / "data" / "val"
    assert find_split({"data": "data"}, checkpoint, "train") is None
    assert find_split({}, checkpoint, "val") is None


def test_generated_images_are_deterministic():
    a, b = generated_images(4, seed=3), generated_images(4, seed=3)
    assert [im.tobytes() for im in a.images] == [im.tobytes() for im in b.images]
    assert len({im.size for im in a.images}) > 1 and "generated" in a.source
