"""``clf-infer --ray`` refuses what cannot work with one clear line, before any cluster is touched."""
from __future__ import annotations

import socket
import time

import pytest
from click.testing import CliRunner

from clfkit.cli.infer import infer_cmd
from clfkit.errors import ConfigError
from helpers import make_labelled_folder


def _invoke(*args):
    return CliRunner().invoke(infer_cmd, [str(a) for a in args])


def _closed_port() -> int:
    with socket.socket() as s:  # bound then released: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_address_where_nothing_answers_fails_at_once(tiny, tmp_path):
    photos = make_labelled_folder(tmp_path / "photos", {"cat": 2})
    start = time.monotonic()
    result = _invoke("--model", tiny.onnx, photos, "--ray", "--ray-address", f"127.0.0.1:{_closed_port()}")
    assert result.exit_code == 1 and "nothing answers there" in result.output
    assert time.monotonic() - start < 10  # not Ray's ~20 s of retries
    assert "Traceback" not in result.output
    assert [line for line in result.output.splitlines() if "nothing answers" in line] == \
        result.output.strip().splitlines()[-1:]  # the one error line, last
    result = _invoke("--model", tiny.onnx, photos, "--ray", "--ray-address", "ray://head:10001")
    assert result.exit_code == 1 and "HOST:PORT" in result.output


def test_flags_that_do_not_mix_with_ray_are_refused(tiny, tmp_path):
    photos = make_labelled_folder(tmp_path / "photos", {"cat": 2})
    result = _invoke("--model", tiny.onnx, photos, "--ray", "--workers", "2")
    assert result.exit_code == 2 and "--workers sets a local run's decode threads" in result.output
    result = _invoke("--model", tiny.onnx, photos, "--ray-actors", "2")
    assert result.exit_code == 2 and "need --ray" in result.output
    result = _invoke("--model", tiny.onnx, photos, "--ray", "--out", f"{tmp_path}/shards/", "--report",
                     tmp_path / "report")
    assert result.exit_code == 1 and "--report needs the rows on this machine" in result.output
    result = _invoke("--model", tiny.onnx, photos, "--out", f"{tmp_path}/shards/")  # a folder, no --ray
    assert result.exit_code == 1 and "--ray" in result.output


def test_a_gone_cluster_that_ray_still_records_gives_a_fresh_local_ray(tmp_path, monkeypatch):
    """Ray joins 'the cluster last started here' when given no address, and waits for ever on one that was
    killed (its record, ray_current_cluster, outlives it): clf-infer checks the record first."""
    pytest.importorskip("ray")
    from clfkit.cluster.job import _where

    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))  # where Ray keeps the record
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    logged: list[str] = []
    assert _where(None, logged.append) == (None, True)  # no record: Ray starts its own
    (tmp_path / "ray").mkdir()
    record = tmp_path / "ray" / "ray_current_cluster"
    record.write_text(f"127.0.0.1:{_closed_port()}")
    assert _where(None, logged.append) == ("local", True)
    assert len(logged) == 1 and "does not answer; starting a Ray of this command's own" in logged[0]
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        record.write_text(f"127.0.0.1:{listening.getsockname()[1]}")
        assert _where(None, logged.append) == (None, False)  # it answers: Ray joins it
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{_closed_port()}")
    with pytest.raises(ConfigError, match="RAY_ADDRESS 127.0.0.1:.*nothing answers"):
        _where(None, logged.append)


def test_actors_never_take_the_cpus_that_reading_and_decoding_need():
    from clfkit.cluster.job import DECODE_CPUS, max_actors

    assert max_actors(2, 1.0) == 1  # 2 actors of 1 CPU on 2 CPUs: Ray Data would wait for ever
    assert max_actors(2, 0.5) == 3 and max_actors(3, 1.0) == 2 and max_actors(64, 4.0) == 15
    assert max_actors(1, 1.0) == 0 and max_actors(DECODE_CPUS + 1, 1.0) == 1
