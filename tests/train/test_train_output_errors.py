"""clf-train writing to a full disk or a read-only folder: one clear line; model.pt is whole or absent."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fs_helpers import REASONS, no_temporaries
from train_helpers import TINY, split_data
from helpers import one_error_line

from clfkit.cli.train import train_cmd
from clfkit.models.classifier import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # trains on one PyTorch thread (conftest.py)


@pytest.mark.parametrize("where", REASONS)
def test_train_to_a_full_or_read_only_disk(tmp_path: Path, where: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(where)
    data = split_data(tmp_path)
    result = CliRunner().invoke(train_cmd, [str(data), "--out", str(folder / "run"), "--mode", "finetune",
                                            "--backbone", TINY, "--no-pretrained", "--input-size", "32",
                                            "--epochs", "1", "--batch-size", "8", "--workers", "0",
                                            "--device", "cpu", "--precision", "fp32"])
    one_error_line(result, REASONS[where])
    if "run/model.pt" in no_temporaries(folder):
        load_checkpoint(folder / "run" / "model.pt")  # complete if it is there at all
