"""The README's Python section runs as written, on data it draws itself, in a fresh interpreter."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_block() -> str:
    section = README.read_text(encoding="utf-8").split("\n## Python\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1, "the README's Python section should hold exactly one python block"
    return blocks[0]


@pytest.mark.slow
def test_the_readme_python_block_runs_verbatim(tmp_path):
    code = python_block()
    assert "clfkit.train_model(" in code and "clfkit.load_model(" in code  # it is the flow, not a fragment
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("validation accuracy ")
    found = [m.groups() for line in lines
             if (m := re.match(r"^(<image \d+>|\S+) (circle|square|triangle|star) (\d\.\d\d) (.*)$", line))]
    assert [where for where, *_ in found][1:] == ["<image 1>", "<image 2>"]  # a path, a PIL image, an array
    assert found[0][0].startswith("data/test/circle/")
    assert len({tuple(rest) for _, *rest in found}) == 1  # the same photo, three ways: the same prediction
    assert lines[-1].startswith("test accuracy ")
    assert (tmp_path / "model.onnx").is_file() and (tmp_path / "runs" / "shapes" / "metrics.json").is_file()
