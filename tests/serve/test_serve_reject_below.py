"""clf-serve --reject-below through FastAPI's TestClient: "unknown" answers that still name the top class."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clfkit.cli.serve import serve_cmd
from clfkit.errors import ConfigError
from clfkit.runtime.engine import Engine
from clfkit.serve import ServeConfig, create_app
from helpers import one_error_line
from serve_helpers import read_files


def _client(onnx: Path, **config) -> TestClient:
    return TestClient(create_app(Engine.from_onnx(onnx, device="cpu", threads=1), ServeConfig(**config)))


def _answers(client: TestClient, files: list[tuple[str, bytes]]) -> list[dict]:
    return [client.post("/predict", files={"file": f}).json() for f in files]


def test_a_request_below_the_threshold_gets_unknown(tiny, photos):
    files = read_files(photos)
    with _client(tiny.onnx, topk=2) as c:
        plain = _answers(c, files)
    probs = sorted(a["prob"] for a in plain)
    middle = len(probs) // 2
    assert probs[middle - 1] < probs[middle]
    p = (probs[middle - 1] + probs[middle]) / 2  # photos on both sides
    with _client(tiny.onnx, topk=2, reject_below=p) as c:
        assert c.get("/model").json()["reject_below"] == p
        answers = _answers(c, files)
        batch = c.post("/predict/batch", files=[("files", f) for f in files]).json()["results"]
    for before, got, in_batch in zip(plain, answers, batch):
        # prob, index and topk are the top class's either way; only pred says whether it was kept.
        assert {k: v for k, v in got.items() if k != "pred"} == {k: v for k, v in before.items() if k != "pred"}
        assert got["pred"] == ("unknown" if before["prob"] < p else before["pred"])
        assert got["topk"][0]["label"] == before["pred"]
        assert {k: v for k, v in in_batch.items() if k != "file"} == got
    assert 0 < sum(a["pred"] == "unknown" for a in answers) < len(answers)


def test_without_the_flag_nothing_is_unknown_and_model_says_null(tiny, photos):
    with _client(tiny.onnx) as c:
        assert c.get("/model").json()["reject_below"] is None
        assert all(a["pred"] != "unknown" for a in _answers(c, read_files(photos)))


@pytest.mark.parametrize("value", [0, 1, -1, 2.5, float("nan"), "0.5"])
def test_bad_thresholds_are_refused_by_the_config(value):
    with pytest.raises(ConfigError, match="--reject-below"):
        ServeConfig(reject_below=value)


def test_a_model_with_a_class_named_unknown_is_refused_at_start(tiny_unknown_class):
    engine = Engine.from_onnx(tiny_unknown_class, device="cpu", threads=1)
    with pytest.raises(ConfigError, match="class named 'unknown'"):
        create_app(engine, ServeConfig(reject_below=0.5))
    create_app(engine, ServeConfig())  # without the flag it is a plain class


@pytest.mark.parametrize("value", ["0", "1", "-1"])
def test_the_command_refuses_bad_values_in_one_line(tmp_path, value):
    # Checked before the model is opened (the model does not exist).
    result = CliRunner().invoke(serve_cmd, ["--model", str(tmp_path / "none.onnx"), "--reject-below", value],
                                catch_exceptions=False)
    assert "--reject-below must be between 0 and 1" in one_error_line(result)


def test_the_command_calls_a_word_a_usage_error(tmp_path):
    result = CliRunner().invoke(serve_cmd, ["--model", str(tmp_path / "none.onnx"), "--reject-below", "abc"])
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert result.exit_code == 2 and len(errors) == 1 and "--reject-below" in errors[0]
