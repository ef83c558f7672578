"""clf-serve's command line through click's CliRunner: bad models and options are one line and exit 1 or 2."""
from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from clfkit.errors import ConfigError
from clfkit.serve.server import bind_socket
from clfkit.cli.serve import serve_cmd
from clfkit.serve.config import ServeConfig
from helpers import one_error_line


def _invoke(*args: str):
    return CliRunner().invoke(serve_cmd, [str(a) for a in args], catch_exceptions=False)


def test_missing_model_is_one_line_and_exit_1(tmp_path):
    result = _invoke("--model", tmp_path / "nope.onnx")
    assert result.exit_code == 1
    assert "nope.onnx: model not found" in one_error_line(result)


def test_the_default_model_is_model_onnx_here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke()
    assert result.exit_code == 1 and "model.onnx: model not found" in one_error_line(result)


def test_a_file_that_is_not_onnx_is_one_line_and_exit_1(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model at all")
    result = _invoke("--model", bad, "--device", "cpu")
    assert result.exit_code == 1 and "cannot load this file as an ONNX model" in one_error_line(result)


def test_a_port_in_use_is_one_line_and_exit_1(tiny):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = _invoke("--model", tiny.onnx, "--device", "cpu", "--port", port)
    assert result.exit_code == 1
    line = one_error_line(result)
    assert f"--port {port}: cannot listen there" in line and "choose another --port" in line


@pytest.mark.parametrize("args, flag", [(["--max-batch", "0"], "--max-batch"), (["--device", "tpu"], "--device"),
                                        (["--max-upload-mb", "0"], "--max-upload-mb"), (["--tta", "-1"], "--tta"),
                                        (["--port", "70000"], "--port")])
def test_bad_option_values_name_the_flag(tiny, args, flag):
    result = CliRunner().invoke(serve_cmd, ["--model", str(tiny.onnx), *args])
    assert result.exit_code == 2 and flag in result.output and "Traceback" not in result.output


def test_config_errors_name_the_flag():
    with pytest.raises(ConfigError, match="--max-wait-ms"):
        ServeConfig(max_wait_ms=-1)
    with pytest.raises(ConfigError, match="--topk"):
        ServeConfig(topk=0)
    assert ServeConfig(tta=0).views == ServeConfig(tta=1).views == 1 and ServeConfig(tta=4).views == 4


def test_bind_socket_picks_a_free_port_for_port_0():
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.getsockname()[1] > 0
    finally:
        sock.close()
    with pytest.raises(ConfigError, match="--host no-such-host.invalid"):
        bind_socket("no-such-host.invalid", 0)


def test_help_lists_the_api():
    result = _invoke("--help")
    assert result.exit_code == 0
    for word in ("/predict", "--max-batch", "--max-wait-ms", "--max-upload-mb", "--tta", "--threads"):
        assert word in result.output
