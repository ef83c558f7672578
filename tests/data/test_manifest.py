"""clfkit.data.manifest: reading back clf-split's manifest.csv and split.json for the label audit."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import make_labelled_folder

from clfkit.data.make_split import make_split
from clfkit.data.manifest import read_split_records
from clfkit.errors import DataError


def test_reads_sources_hashes_and_photos_in_several_classes(tmp_path: Path) -> None:
    images = make_labelled_folder(tmp_path / "images", {"a": 6, "b": 6})
    shutil.copyfile(images / "a" / "img_001.jpg", images / "b" / "same_as_a.jpg")
    make_split(images, tmp_path / "data", progress=False)
    records = read_split_records(tmp_path / "data")
    assert records.found and len(records.source) == 13
    assert records.source["train/b/same_as_a.jpg"] == "b/same_as_a.jpg"
    assert records.sha256["train/b/same_as_a.jpg"] == records.sha256["train/a/img_001.jpg"]
    assert records.cross_class == [["a/img_001.jpg", "b/same_as_a.jpg"]]


def test_a_folder_without_a_manifest_has_empty_records(tmp_path: Path) -> None:
    records = read_split_records(tmp_path)
    assert not records.found and records.source == {} and records.cross_class == []


def test_a_damaged_manifest_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.csv").write_text("path,class\ntrain/a/x.jpg,a\n")
    with pytest.raises(DataError, match=r"manifest.csv: no source, sha256, group column"):
        read_split_records(tmp_path)
    (tmp_path / "manifest.csv").write_text("path,source,sha256,group\n")
    (tmp_path / "split.json").write_text("{not json")
    with pytest.raises(DataError, match=r"split.json: cannot be read"):
        read_split_records(tmp_path)
