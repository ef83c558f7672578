"""A bounded load test for a running ``clf-serve``, and ``clf-serve`` in a subprocess; for tests and benchmarks.

:func:`run_load` sends a fixed number of POST /predict requests from ``concurrency`` threads (one keep-alive
HTTP connection each) and stops at the count or at ``time_limit_s``, whichever comes first.  Latency is timed
per request with ``time.perf_counter()`` from before the request is sent to the parsed answer.
:class:`ServerProcess` runs the real ``clf-serve`` command on a free port and always stops it.

Only for servers on this machine: the load is meant for 127.0.0.1.
"""
from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["LoadResult", "run_load", "ServerProcess"]


@dataclass
class LoadResult:
    requests: int  # answered (ok or not)
    errors: int
    seconds: float
    latencies_ms: np.ndarray = field(repr=False)  # of the successful requests
    error_samples: list[str] = field(default_factory=list)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # first answer per file name

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if len(self.latencies_ms) else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 3),
                "requests_per_s": round(self.requests_per_s, 2), "p50_ms": round(self.percentile(50), 2),
                "p90_ms": round(self.percentile(90), 2), "p99_ms": round(self.percentile(99), 2),
                "mean_ms": round(float(np.mean(self.latencies_ms)), 2) if len(self.latencies_ms) else None,
                "error_samples": self.error_samples[:5]}

    def summary(self) -> str:
        return (f"{self.requests} requests, {self.errors} errors in {self.seconds:.2f} s: "
                f"{self.requests_per_s:.1f} req/s, latency p50 {self.percentile(50):.1f} ms, "
                f"p99 {self.percentile(99):.1f} ms")


def run_load(url: str, files: Sequence[tuple[str, bytes]], *, requests: int, concurrency: int,
             time_limit_s: float = 300.0, raw: bool = False, timeout_s: float = 60.0) -> LoadResult:
    """POST ``requests`` images (``files`` round-robin, as multipart ``file`` or with ``raw`` the body) to
    ``url``/predict from ``concurrency`` threads; stops early after ``time_limit_s``."""
    import httpx

    if not files:
        raise ValueError("run_load needs at least one file")
    counter = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    answers: dict[str, dict[str, Any]] = {}
    start = time.perf_counter()
    deadline = start + time_limit_s

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=timeout_s) as client:
            while time.perf_counter() < deadline:
                with lock:
                    number = next(counter)
                if number >= requests:
                    return
                name, data = files[number % len(files)]
                t0 = time.perf_counter()
                try:
                    if raw:
                        response = client.post("/predict", content=data,
                                               headers={"content-type": "application/octet-stream"})
                    else:
                        response = client.post("/predict", files={"file": (name, data)})
                    body = response.json()
                    ok = response.status_code == 200 and "pred" in body
                except Exception as exc:  # noqa: BLE001 - counted as an error, the load goes on
                    ok, body = False, {"error": f"{type(exc).__name__}: {exc}"}
                elapsed_ms = (time.perf_counter() - t0) * 1000
                with lock:
                    if ok:
                        latencies.append(elapsed_ms)
                        answers.setdefault(name, body)
                    else:
                        errors.append(f"{name}: {body}")

    threads = [threading.Thread(target=client_loop, name=f"load-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(time_limit_s + timeout_s + 5)
    seconds = time.perf_counter() - start
    return LoadResult(requests=len(latencies) + len(errors), errors=len(errors), seconds=seconds,
                      latencies_ms=np.asarray(latencies), error_samples=errors[:20], answers=answers)


def _clf_serve() -> list[str]:
    """The installed ``clf-serve`` script next to this Python, else ``python -m clfkit.serve``."""
    script = Path(sys.executable).parent / "clf-serve"
    if script.is_file():
        return [str(script)]
    found = shutil.which("clf-serve")
    return [found] if found else [sys.executable, "-m", "clfkit.serve"]


class ServerProcess:
    """``clf-serve ARGS --port 0 --no-access-log`` in a subprocess; ``url`` once /health answers.

    Use as a context manager: the server is stopped with SIGINT (uvicorn's graceful shutdown) on exit, killed
    if it does not stop in time.  Its stderr goes to a file (``log``), so a chatty server never blocks on a pipe."""

    def __init__(self, args: Sequence[str], *, startup_timeout_s: float = 90.0, env: dict[str, str] | None = None):
        self.args = [*_clf_serve(), *map(str, args), "--port", "0", "--no-access-log"]
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.url = ""
        self.returncode: int | None = None
        self._log = tempfile.NamedTemporaryFile("w+", prefix="clf-serve-", suffix=".log", delete=False)
        self._proc: subprocess.Popen | None = None
        self._final_log = ""

    @property
    def log(self) -> str:
        """What the server printed (kept after it stopped)."""
        if self._log.closed:
            return self._final_log
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def __enter__(self) -> "ServerProcess":
        import httpx

        env = {**os.environ, **(self.env or {})}
        self._proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                      stdin=subprocess.DEVNULL)
        deadline = time.perf_counter() + self.startup_timeout_s
        try:
            while time.perf_counter() < deadline:
                if self._proc.poll() is not None:
                    raise RuntimeError(f"clf-serve exited with {self._proc.returncode}:\n{self.log}")
                if not self.url:
                    match = re.search(r"serving on (http://\S+) ", self.log)
                    self.url = match.group(1) if match else ""
                if self.url:
                    try:
                        if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                            return self
                    except httpx.HTTPError:
                        pass
                time.sleep(0.1)
            raise RuntimeError(f"clf-serve did not answer /health within {self.startup_timeout_s:.0f} s:\n{self.log}")
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 15.0) -> int | None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc is not None:
            self.returncode = proc.returncode
        return self.returncode

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._final_log = self.log
        self._log.close()
        os.unlink(self._log.name)
