"""clf-export writing to a full disk or a read-only folder: one clear line; model.onnx is whole or absent."""
from __future__ import annotations

import onnx
import pytest
from click.testing import CliRunner

from clfkit.cli.export import export_cmd
from helpers import one_error_line
from fs_helpers import REASONS, no_temporaries


@pytest.mark.parametrize("where", REASONS)
def test_export_to_a_full_or_read_only_disk(tiny_run, where: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(where)
    result = CliRunner().invoke(export_cmd, [str(tiny_run.checkpoint), str(folder / "model.onnx"),
                                             "--verify", str(tiny_run.data / "val")])
    one_error_line(result, REASONS[where])
    if "model.onnx" in no_temporaries(folder):
        onnx.checker.check_model(str(folder / "model.onnx"))  # complete if it is there at all
