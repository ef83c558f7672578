"""The real ``clf-serve`` command: uvicorn on 127.0.0.1 (a free port), a bounded load test, raw sockets.

The server runs in a subprocess started through the installed console script and is always stopped.  Timings
are reported at the end of the test run, never asserted: this machine's cores are shared.
"""
from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from clfkit.runtime.engine import Engine
from clfkit.serve.loadgen import ServerProcess, run_load
from serve_helpers import bomb_png, read_files

pytestmark = pytest.mark.slow

REQUESTS = 2000
CLIENTS = 16


@pytest.fixture(scope="module")
def server(tiny):
    with ServerProcess(["--model", tiny.onnx, "--device", "cpu", "--threads", "1", "--max-batch", "32",
                        "--max-wait-ms", "5", "--topk", "3"]) as proc:
        yield proc
    assert proc.returncode == 0, proc.log  # SIGINT is a graceful stop
    assert "Traceback" not in proc.log, proc.log


def test_load_2000_requests_from_16_clients_without_errors_and_batched(server, tiny, photos, report_measurement):
    files = read_files(photos)
    expected = {name: p.label for (name, _), p in
                zip(files, Engine.from_onnx(tiny.onnx, device="cpu").predict(photos))}
    result = run_load(server.url, files, requests=REQUESTS, concurrency=CLIENTS, time_limit_s=120)
    health = httpx.get(f"{server.url}/health").json()
    report_measurement(f"clf-serve load test (tiny model, {CLIENTS} clients): {result.summary()}; mean batch "
                       f"{health['batching']['mean_batch_size']}, largest {health['batching']['largest_batch']}")
    assert result.errors == 0, result.error_samples
    assert result.requests == REQUESTS, "the load stopped at its time limit"
    assert {name: body["pred"] for name, body in result.answers.items()} == expected
    batching = health["batching"]
    assert batching["images"] == REQUESTS
    assert batching["largest_batch"] > 1, "16 concurrent clients never shared a model call"
    assert batching["batches"] < REQUESTS
    assert health["queued"] == 0 and health["running"] == 0


def _raw_http(url: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_10_gb_content_length_is_refused_before_reading_and_the_server_goes_on(server, photos,
                                                                                   report_measurement):
    head = (b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
            b"Content-Length: 10000000000\r\n\r\n")
    t0 = time.perf_counter()
    answer = _raw_http(server.url, head, b"\xff\xd8" * 1000)  # 2 KB of the promised 10 GB
    report_measurement(f"clf-serve: a 10 GB Content-Length refused with 413 after "
                       f"{1000 * (time.perf_counter() - t0):.1f} ms")
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error":"upload too large' in answer
    bad = httpx.post(f"{server.url}/predict", content=bomb_png(), headers={"content-type": "image/png"})
    assert bad.status_code == 400 and "decompression bomb" in bad.json()["error"]
    name, data = read_files(photos[:1])[0]
    good = httpx.post(f"{server.url}/predict", files={"file": (name, data)})
    assert good.status_code == 200 and good.json()["pred"] == "cat"


def test_the_web_page_and_docs_are_served(server):
    page = httpx.get(f"{server.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert httpx.get(f"{server.url}/static/app.js").status_code == 200
    assert httpx.get(f"{server.url}/docs/assets/swagger-ui-bundle.js").status_code == 200
