"""PATH arguments: files, folders, globs, recursion; labelled-folder detection and unknown folders."""
from __future__ import annotations

from pathlib import Path

from clfkit.runtime.sources import detect_labelled, expand_paths
from helpers import draw_image


def _tree(root: Path) -> Path:
    for rel in ("cat/a.jpg", "cat/deep/b.PNG", "dog/c.jpeg", "loose.jpg", "zebra/z.jpg", ".hidden/h.jpg"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_image(len(rel)).save(path, "PNG" if rel.endswith("PNG") else "JPEG")
    (root / "cat" / "notes.txt").write_text("x")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    return root


def test_folders_recurse_by_default_and_skip_non_images(tmp_path):
    root = _tree(tmp_path / "photos")
    rel = [p.relative_to(root).as_posix() for p in expand_paths([root])]
    assert rel == ["loose.jpg", "cat/a.jpg", "cat/deep/b.PNG", "dog/c.jpeg", "zebra/z.jpg"]
    assert [p.name for p in expand_paths([root / "cat"], recursive=False)] == ["a.jpg"]
    assert sum(1 for _ in expand_paths([root])) == 5


def test_explicit_files_and_missing_paths_are_kept_for_an_error_row(tmp_path):
    root = _tree(tmp_path / "photos")
    args = [root / "cat" / "notes.txt", root / "missing.jpg", root / "dog"]
    assert list(expand_paths(args)) == [root / "cat" / "notes.txt", root / "missing.jpg", root / "dog" / "c.jpeg"]


def test_globs_match_images_and_expand_folders(tmp_path):
    root = _tree(tmp_path / "photos")
    assert [p.name for p in expand_paths([str(root / "*" / "*.jp*g")])] == ["a.jpg", "c.jpeg", "z.jpg"]
    assert [p.name for p in expand_paths([str(root / "cat" / "*")])] == ["a.jpg", "b.PNG"]  # not notes.txt
    assert [p.name for p in expand_paths([str(root / "**" / "*.PNG")])] == ["b.PNG"]
    said: list[str] = []
    assert list(expand_paths([str(root / "*.gif")], log=said.append)) == []
    assert said and "matches no file" in said[0]


def test_labelled_folder_detection_labels_and_unknown_folders(tmp_path):
    root = _tree(tmp_path / "photos")
    labelled = detect_labelled([root], ["cat", "dog", "owl", "Zebra"])
    assert labelled is not None
    assert labelled.known == ("cat", "dog") and labelled.unknown == ("zebra",)
    assert labelled.label_of(root / "cat" / "deep" / "b.PNG") == "cat"  # deeper folders belong to the class
    assert labelled.label_of(root / "zebra" / "z.jpg") is None
    assert labelled.label_of(root / "loose.jpg") is None
    (line,) = labelled.describe_unknown(["cat", "dog", "owl", "Zebra"])
    assert "zebra" in line and "did you mean 'Zebra'" in line
    assert detect_labelled([root], ["owl"]) is None  # no sub-folder is a class: not labelled
    assert detect_labelled([root / "cat", root / "dog"], ["cat"]) is None  # several arguments
    assert detect_labelled([root / "loose.jpg"], ["cat"]) is None
