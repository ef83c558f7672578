"""Inputs named by URI (clfkit.runtime.uris), on real ``file://`` URIs through pyarrow's filesystems: what is a
URI, listing a prefix by the folder rules, reading one object with the local run's reasons, and clf-infer on
``file://<folder>`` giving the plain folder's predictions with the URI as each row's path.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.cli.infer import infer_cmd
from clfkit.errors import ConfigError, ImageError
from clfkit.runtime.sources import expand_paths
from clfkit.runtime.uris import is_uri, list_uri, read_uri_bytes
from clfkit.vision.images import read_image_bytes
from helpers import draw_image, make_labelled_folder


def _tree(root: Path) -> Path:
    for rel in ("cat/a.jpg", "cat/deep/b.PNG", "dog/c.jpeg", "zebra/z.gif", ".hidden/h.jpg", "__MACOSX/m.jpg",
                "cat/.d.jpg"):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        draw_image(len(rel)).save(path, {"PNG": "PNG", "gif": "GIF"}.get(rel.rsplit(".", 1)[1], "JPEG"))
    (root / "cat" / "notes.txt").write_text("x")
    (root / "cat" / ".DS_Store").write_bytes(b"\0")
    (root / "dog" / "Thumbs.db").write_bytes(b"\0")
    return root


def test_what_is_a_uri():
    assert is_uri("s3://b/k") and is_uri("file:///a") and is_uri("gs://bucket/")
    assert not is_uri("C:\\x") and not is_uri("C://x")  # a Windows drive letter is not a scheme
    assert not is_uri("/a/b") and not is_uri("photos/a.jpg") and not is_uri("")
    assert not is_uri(Path("/a/b")) and not is_uri(None)


def test_listing_a_folder_gives_sorted_image_uris_without_clutter(tmp_path):
    root = _tree(tmp_path / "photos")
    found = list(list_uri(root.as_uri()))
    assert found == [f"file://{root}/{rel}" for rel in ("cat/a.jpg", "cat/deep/b.PNG", "dog/c.jpeg", "zebra/z.gif")]
    assert list(list_uri(root.as_uri() + "/")) == found  # a prefix with its trailing slash
    # The same files the local folder scan finds, as URIs.
    assert found == [p.as_uri() for p in expand_paths([root])]


def test_listing_without_recursion_stays_in_the_folder(tmp_path):
    root = _tree(tmp_path / "photos")
    assert list(list_uri((root / "cat").as_uri(), recursive=False)) == [f"file://{root}/cat/a.jpg"]
    assert list(expand_paths([(root / "cat").as_uri()], recursive=False)) == [f"file://{root}/cat/a.jpg"]


def test_hidden_folders_above_the_prefix_do_not_hide_it(tmp_path):
    # Only folders below the prefix count: photos kept under ~/.cache/ are listed.
    root = _tree(tmp_path / ".cache" / "photos")
    assert len(list(list_uri(root.as_uri()))) == 4


def test_a_single_object_uri_yields_itself(tmp_path):
    root = _tree(tmp_path / "photos")
    for path in (root / "cat" / "a.jpg", root / "cat" / "notes.txt"):  # named explicitly: always tried
        assert list(list_uri(path.as_uri())) == [path.as_uri()]


def test_a_missing_uri_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        list(list_uri((tmp_path / "nowhere").as_uri()))
    with pytest.raises(ConfigError, match="cannot open this URI"):
        list(list_uri("nosuchscheme://bucket/photos/"))


def test_expand_paths_yields_uris_for_uri_arguments(tmp_path):
    root = _tree(tmp_path / "photos")
    got = list(expand_paths([(root / "dog").as_uri(), root / "zebra"]))
    assert got == [f"file://{root}/dog/c.jpeg", root / "zebra" / "z.gif"]
    assert isinstance(got[0], str)


def test_reading_an_object_gives_its_bytes(tmp_path):
    path = tmp_path / "a.jpg"
    draw_image(1).save(path)
    assert read_uri_bytes(path.as_uri()) == path.read_bytes()


def test_unreadable_objects_have_the_local_reasons(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()
    for name, reason in [("gone.jpg", "file not found (moved or deleted?)"),
                         ("folder.jpg", "is a directory, not an image file"), ("empty.jpg", "empty file (0 bytes)")]:
        path = tmp_path / name
        with pytest.raises(ImageError) as by_uri:
            read_uri_bytes(path.as_uri())
        with pytest.raises(ImageError) as by_path:
            read_image_bytes(path)
        assert by_uri.value.reason == by_path.value.reason == reason
        assert by_uri.value.path == path.as_uri()  # the row is the URI's


def test_a_uri_that_cannot_be_opened_is_an_image_error_not_a_crash():
    with pytest.raises(ImageError) as info:
        read_uri_bytes("nosuchscheme://bucket/a.jpg")
    assert info.value.reason.startswith("cannot open this URI")


def test_listed_names_with_awkward_characters_can_be_read(tmp_path):
    names = ("with space.jpg", "hash#1.jpg", "ünï.jpg", "q?x.jpg", "pct%20.jpg")
    for i, name in enumerate(names):
        draw_image(i).save(tmp_path / name)
    found = list(list_uri(tmp_path.as_uri()))
    assert len(found) == len(names) and all(" " not in uri and "#" not in uri for uri in found)
    for uri, name in zip(found, sorted(names)):
        assert read_uri_bytes(uri) == (tmp_path / name).read_bytes()  # the object it names, not a neighbour


def test_a_uri_lists_in_the_order_of_the_plain_folder(tmp_path):
    from clfkit.runtime.sources import expand_paths

    for rel in ("b.jpg", "a/z.jpg", "a/b/c.jpg", "a/a.jpg", "loose.png", "ab/x.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        draw_image(1).save(tmp_path / rel)
    plain = [p.relative_to(tmp_path).as_posix() for p in expand_paths([tmp_path])]
    uris = [u[len(tmp_path.as_uri()) + 1:] for u in expand_paths([tmp_path.as_uri()])]
    assert uris == plain == ["b.jpg", "loose.png", "a/a.jpg", "a/z.jpg", "a/b/c.jpg", "ab/x.jpg"]


def _invoke(*args):
    return CliRunner().invoke(infer_cmd, [str(a) for a in args], catch_exceptions=False)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def labelled(tmp_path) -> Path:
    root = make_labelled_folder(tmp_path / "photos", {"cat": 3, "dog": 2, "owl": 2})
    draw_image(9, (90, 30), kind=1).convert("L").save(root / "dog" / "grey.png")
    return root


def test_clf_infer_on_a_file_uri_equals_the_plain_folder(tiny, labelled, tmp_path):
    plain, by_uri = tmp_path / "plain.csv", tmp_path / "uri.csv"
    common = ("--model", tiny.onnx, "--device", "cpu", "--tta", 2, "--topk", 2, "--no-progress")
    assert _invoke(labelled, "--out", plain, *common).exit_code == 0
    result = _invoke(labelled.as_uri(), "--out", by_uri, *common)
    assert result.exit_code == 0, result.output
    a, b = _rows(plain), _rows(by_uri)
    assert len(b) == 8
    assert [r["path"] for r in b] == [Path(r["path"]).as_uri() for r in a]  # each row's path is the URI
    for x, y in zip(a, b):
        assert {k: v for k, v in y.items() if k != "path"} == {k: v for k, v in x.items() if k != "path"}


def test_bad_objects_under_a_uri_are_the_local_error_rows_and_exit_3(tiny, labelled, tmp_path):
    (labelled / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (labelled / "owl" / "empty.png").write_bytes(b"")
    plain, by_uri = tmp_path / "plain.csv", tmp_path / "uri.csv"
    common = ("--model", tiny.onnx, "--device", "cpu", "--no-progress")
    assert _invoke(labelled, "--out", plain, *common).exit_code == 3
    result = _invoke(labelled.as_uri(), "--out", by_uri, *common)
    assert result.exit_code == 3, result.output
    errors = {r["path"]: r["error"] for r in _rows(by_uri) if r["error"]}
    assert errors == {Path(r["path"]).as_uri(): r["error"] for r in _rows(plain) if r["error"]}
    assert errors[(labelled / "owl" / "empty.png").as_uri()] == "empty file (0 bytes)"
    assert len(errors) == 2 and "2 file(s) could not be read" in result.stderr


def test_skip_existing_continues_a_uri_run(tiny, labelled, tmp_path):
    full, cut = tmp_path / "full.csv", tmp_path / "cut.csv"
    common = ("--model", tiny.onnx, "--device", "cpu", "--no-progress")
    assert _invoke(labelled.as_uri(), "--out", full, *common).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    cut.write_text("".join(lines[:4]))  # the header and 3 rows
    result = _invoke(labelled.as_uri(), "--out", cut, "--skip-existing", *common)
    assert result.exit_code == 0, result.output
    assert "3 file(s) already predicted" in result.stderr  # URIs are matched as written, not made absolute
    assert _rows(cut) == _rows(full)
