"""clf-bench writing to a full disk or a read-only folder: one clear line, before any measuring."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from fs_helpers import REASONS, no_temporaries
from helpers import one_error_line

from clfkit.cli.bench import bench_cmd


@pytest.mark.parametrize("where", REASONS)
def test_bench_to_a_full_or_read_only_disk(bench_run, where: str, request: pytest.FixtureRequest) -> None:
    folder = request.getfixturevalue(where)
    result = CliRunner().invoke(bench_cmd, [str(bench_run.checkpoint), str(bench_run.onnx), str(bench_run.data),
                                            "--out", str(folder / "bench"), "--batch-sizes", "1", "--tta", "0",
                                            "--min-runs", "1", "--min-seconds", "0", "--repeats", "1",
                                            "--no-memory", "--max-images", "6", "--no-peers"])
    line = one_error_line(result, REASONS[where])
    no_temporaries(folder)
    if where == "readonly_dir":  # found before measuring, not after
        assert line.startswith(f"Error: --out {folder / 'bench'}: cannot write there")
        assert "clf-bench:" not in result.output
