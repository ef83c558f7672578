"""A real two-node Ray cluster on this machine for the ``clf-infer --ray`` tests, started once per session.

``ray start --head`` plus a second node joining it with ``ray start --address`` (small ``--num-cpus``, a small
object store), each started with ``--block`` in a session of its own and stopped at the end by signalling the
processes of those two sessions only (never ``ray stop``, which would stop every Ray on the machine).  The
cluster uses token authentication with a token of its own, given to the drivers through the environment.

Both nodes run with a ``sitecustomize`` that makes ``import torch`` fail, so every Ray worker (the CPU tasks
and the model actors) is torch-free: a job that imported torch anywhere on a worker would fail its test.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from helpers import _BLOCK_TORCH

RAY = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")


@dataclass(frozen=True)
class RayCluster:
    address: str
    env: dict[str, str]  # the environment the nodes run with (torch blocked), for drivers started by tests
    pids: tuple[int, ...]  # the two `ray start --block` processes, each its own session's leader


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _session_members(sids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) in sids:
            found.append(int(entry))
    return found


def _stop(pids: tuple[int, ...]) -> None:
    """SIGTERM every process of the nodes' sessions (raylets, GCS, workers), then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
        members = _session_members(set(pids))
        for pid in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _session_members(set(pids)):
            time.sleep(0.1)


def _alive_nodes(address: str, env: dict[str, str]) -> int:
    code = ("import ray; ray.init(address=%r, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % address)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    return int(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() else 0


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[RayCluster]:
    pytest.importorskip("ray.data")
    if RAY is None:
        pytest.skip("the `ray` command is not installed")
    # Ray's socket paths must stay short (108 bytes): a temp dir of its own, not pytest's deep tmp_path.
    temp = tempfile.mkdtemp(prefix="clfray-", dir="/tmp")
    site = Path(temp) / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_BLOCK_TORCH)
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    # Token authentication, as Ray recommends for any cluster, with a token of this cluster's own (a token in
    # ~/.ray left by another Ray would otherwise switch the nodes to token mode and the drivers not).
    token = Path(temp) / "token"
    token.write_text(secrets.token_hex(32))
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    common = ["--block", "--disable-usage-stats"]
    logs = Path(temp) / "logs"
    logs.mkdir()
    procs = []
    try:
        procs.append(subprocess.Popen(
            [RAY, "start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
             "--object-store-memory", str(200 * 2**20), "--temp-dir", str(Path(temp) / "t"), *common],
            env=env, start_new_session=True, stdout=(logs / "head.log").open("w"), stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 90
        while _alive_nodes(address, env) < 1:
            assert procs[0].poll() is None, (logs / "head.log").read_text()
            assert time.monotonic() < deadline, "the Ray head never came up"
            time.sleep(0.5)
        procs.append(subprocess.Popen(
            [RAY, "start", "--address", address, "--num-cpus", "1", "--object-store-memory", str(100 * 2**20),
             "--dashboard-agent-listen-port", str(_free_port()), *common],
            env=env, start_new_session=True, stdout=(logs / "node2.log").open("w"), stderr=subprocess.STDOUT))
        while _alive_nodes(address, env) < 2:
            assert procs[1].poll() is None, (logs / "node2.log").read_text()
            assert time.monotonic() < deadline, "the second Ray node never joined"
            time.sleep(0.5)
        yield RayCluster(address=address, env=env, pids=tuple(p.pid for p in procs))
    finally:
        _stop(tuple(p.pid for p in procs))
        shutil.rmtree(temp, ignore_errors=True)
