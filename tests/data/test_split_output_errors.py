"""clf-split writing to a full disk or a read-only folder: one clear line, and DST is left as it was."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fs_helpers import REASONS, no_temporaries
from helpers import make_labelled_folder, one_error_line

from clfkit.cli.split import split_cmd


@pytest.mark.parametrize("where", REASONS)
def test_split_to_a_full_or_read_only_disk(tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(where)
    images = make_labelled_folder(tmp_path / "images", {"cat": 6, "dog": 6, "owl": 6})
    result = CliRunner().invoke(split_cmd, [str(images), str(folder / "data"), "--mode", "copy"])
    line = one_error_line(result, REASONS[where])
    assert "nothing was changed in DST" in line
    assert no_temporaries(folder) == []  # not even an empty DST folder
