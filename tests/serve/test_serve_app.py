"""The HTTP API through FastAPI's TestClient (the real app, engine and batcher; no network)."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from clfkit.cli.infer import infer_cmd
from clfkit.runtime.engine import Engine
from clfkit.serve import ServeConfig, create_app
from clfkit.serve.app import STATIC
from tiny_onnx import CLASSES
from serve_helpers import bomb_png, read_files, truncated_jpeg


def _client(onnx: Path, **config) -> TestClient:
    engine = Engine.from_onnx(onnx, device="cpu", threads=1)
    return TestClient(create_app(engine, ServeConfig(**config)))


@pytest.fixture
def client(tiny):
    with _client(tiny.onnx, max_batch=8, max_wait_ms=2, topk=2) as c:
        yield c


def _clf_infer(onnx: Path, paths: list[Path], out: Path, tta: int) -> dict[str, dict]:
    result = CliRunner().invoke(infer_cmd, ["-m", str(onnx), *map(str, paths), "-o", str(out), "--device", "cpu",
                                            "--tta", str(tta), "--no-progress"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {row["path"]: row for row in json.loads(out.read_text())}


@pytest.mark.parametrize("tta", [0, 3])
@pytest.mark.parametrize("model", ["onnx", "onnx_uint8"])
def test_predictions_equal_clf_infer_for_the_same_files(tiny, photos, tmp_path, tta, model):
    onnx = getattr(tiny, model)
    expected = _clf_infer(onnx, photos, tmp_path / "preds.json", tta)
    with _client(onnx, tta=tta, topk=3) as c:
        for path in photos:
            got = c.post("/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")}).json()
            want = expected[str(path)]
            assert (got["pred"], got["index"], got["tta"]) == (want["pred"], want["index"], tta)
            assert got["prob"] == pytest.approx(want["prob"], abs=1e-6)
            assert [t["label"] for t in got["topk"]] == [t["label"] for t in want["topk"]]
            assert [t["prob"] for t in got["topk"]] == pytest.approx([t["prob"] for t in want["topk"]], abs=1e-6)
            assert got["provider"] == want["provider"] == "CPUExecutionProvider"


def test_multipart_raw_body_and_batch_give_the_same_answer(client, photos):
    files = read_files(photos[:4])
    name, data = files[0]
    multipart = client.post("/predict", files={"file": (name, data)})
    raw = client.post("/predict", content=data, headers={"content-type": "image/jpeg"})
    octet = client.post("/predict", content=data, headers={"content-type": "application/octet-stream"})
    assert multipart.status_code == raw.status_code == octet.status_code == 200
    assert multipart.json() == raw.json() == octet.json()
    assert multipart.json()["pred"] == "cat" and len(multipart.json()["topk"]) == 2

    batch = client.post("/predict/batch", files=[("files", f) for f in files])
    assert batch.status_code == 200
    results = batch.json()["results"]
    assert [r["file"] for r in results] == [n for n, _ in files]
    for (n, d), r in zip(files, results):
        single = client.post("/predict", files={"file": (n, d)}).json()
        assert {k: v for k, v in r.items() if k != "file"} == single


def test_batch_keeps_per_file_errors_in_place(client, photos):
    good = read_files(photos[:2])
    files = [("files", good[0]), ("files", ("notes.txt", b"just text")), ("files", ("empty.jpg", b"")),
             ("files", good[1])]
    response = client.post("/predict/batch", files=files)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["file"] for r in results] == [good[0][0], "notes.txt", "empty.jpg", good[1][0]]
    assert results[0]["pred"] and results[3]["pred"] and "error" not in results[0]
    assert "not an image" in results[1]["error"] and "pred" not in results[1]
    assert "empty file" in results[2]["error"]


def test_model_and_health_describe_what_is_served(client):
    model = client.get("/model").json()
    assert model["classes"] == list(CLASSES) and model["num_classes"] == 3
    assert model["provider"] == "CPUExecutionProvider" and model["device"] == "cpu"
    assert model["spec"]["input_size"] == 32 and model["spec"]["resize_size"] == 36
    assert (model["max_batch"], model["max_wait_ms"], model["tta"], model["topk"]) == (8, 2, 0, 2)
    assert model["name"] == "model.onnx"
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] is True
    assert health["queued"] == 0 and health["batching"]["images"] == 0


def test_concurrent_requests_run_as_one_model_call(tiny, photos):
    """12 requests at once with a generous --max-wait-ms: the batcher must put them into shared batches."""
    engine = Engine.from_onnx(tiny.onnx, device="cpu", threads=1)
    app = create_app(engine, ServeConfig(max_batch=32, max_wait_ms=1000))
    files = read_files(photos)

    async def main() -> tuple[list[httpx.Response], dict]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://serve") as c:
                responses = await asyncio.gather(*(
                    c.post("/predict", files={"file": files[i % len(files)]}) for i in range(12)))
                return responses, (await c.get("/health")).json()

    responses, health = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 12
    batching = health["batching"]
    assert batching["images"] == 12
    assert batching["largest_batch"] >= 6, batching  # all 12 decode within the second; at worst two batches
    assert batching["batches"] <= 2


@pytest.mark.parametrize("kwargs, status, message", [
    ({"content": b"just some text", "headers": {"content-type": "image/png"}}, 400, "not an image"),
    ({"content": b"", "headers": {"content-type": "image/jpeg"}}, 400, "empty file (0 bytes)"),
    ({"content": bomb_png(), "headers": {"content-type": "image/png"}}, 400, "decompression bomb"),
    ({"files": {"file": ("big.png", bomb_png())}}, 400, "big.png: "),
    ({"content": b"{}", "headers": {"content-type": "application/json"}}, 415, "multipart field `file`"),
    ({"data": {"file": "x"}}, 415, "application/x-www-form-urlencoded"),
    ({"files": {"photo": ("a.jpg", b"\xff\xd8")}}, 400, "expected multipart field `file` (found: photo)"),
    ({"files": [("file", ("a.jpg", b"1")), ("file", ("b.jpg", b"2"))]}, 400, "/predict takes one"),
    ({"content": b"--x\r\nnot multipart", "headers": {"content-type": "multipart/form-data; boundary=x"}},
     400, "multipart"),
    ({"content": b"abc", "headers": {"content-type": "multipart/form-data"}}, 400, "boundary"),
])
def test_bad_requests_get_a_4xx_json_error_and_the_server_goes_on(client, photos, kwargs, status, message):
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"} and message in response.json()["error"]
    name, data = read_files(photos[:1])[0]
    assert client.post("/predict", files={"file": (name, data)}).json()["pred"] == "cat"


def test_truncated_jpeg_is_a_400_not_a_500(client, photos):
    data = photos[0].read_bytes()
    response = client.post("/predict", files={"file": ("half.jpg", truncated_jpeg(data))})
    assert response.status_code == 400 and response.json()["error"].startswith("half.jpg: ")


def test_uploads_over_the_limit_get_413(tiny, photos):
    big = photos[0].read_bytes() * 20  # a few tens of KB
    with _client(tiny.onnx, max_upload_mb=len(big) / 2 / 2**20) as c:
        raw = c.post("/predict", content=big, headers={"content-type": "image/jpeg"})
        form = c.post("/predict", files={"file": ("big.jpg", big)})
        batch = c.post("/predict/batch", files=[("files", ("a.jpg", big[: len(big) // 3]))] * 2)
        assert raw.status_code == form.status_code == batch.status_code == 413
        assert "--max-upload-mb" in raw.json()["error"]
        small = photos[1].read_bytes()
        assert c.post("/predict", files={"file": ("ok.jpg", small)}).status_code == 200


def _asgi_post(app, path: str, content_type: bytes, chunks, consumed: list[int]) -> int:
    """POST a body of ``chunks`` straight into the ASGI app (no Content-Length); returns the status sent."""
    sent: list[dict] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", content_type), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}

    async def receive() -> dict:
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        consumed.append(len(chunk))
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


@pytest.mark.parametrize("multipart", [False, True])
def test_the_size_limit_is_enforced_while_the_body_streams_in(tiny, multipart):
    """A 1 GB chunked upload against a 2 MB limit: refused after about 2 MB read, not after 1 GB."""
    app = create_app(Engine.from_onnx(tiny.onnx, device="cpu"), ServeConfig(max_upload_mb=2))
    mib = b"\0" * 2**20
    if multipart:
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="huge.jpg"\r\n\r\n'
        chunks = iter([head, *(mib for _ in range(1024))])
        content_type = b"multipart/form-data; boundary=b"
    else:
        chunks = iter(mib for _ in range(1024))
        content_type = b"application/octet-stream"
    consumed: list[int] = []
    assert _asgi_post(app, "/predict", content_type, chunks, consumed) == 413
    assert sum(consumed) <= 4 * 2**20, f"read {sum(consumed) / 2**20:.0f} MB before refusing"


def test_unknown_paths_and_methods_are_json_errors(client):
    missing = client.get("/nope")
    wrong = client.get("/predict")
    assert missing.status_code == 404 and missing.json() == {"error": "Not Found"}
    assert wrong.status_code == 405 and set(wrong.json()) == {"error"}
    assert client.post("/predict/batch", content=b"x", headers={"content-type": "image/jpeg"}).status_code == 415


def test_openapi_documents_both_ways_to_send_images(client):
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(spec["paths"])
    predict = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "image/*", "application/octet-stream"} <= set(predict)
    batch = spec["paths"]["/predict/batch"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert batch["schema"]["properties"]["files"]["type"] == "array"
    assert "/predict/batch" in spec["info"]["description"] and "413" in spec["info"]["description"]


def test_docs_and_web_page_load_nothing_from_other_hosts(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger-ui" in docs.text
    for page in (docs.text, client.get("/").text, *(p.read_text() for p in STATIC.iterdir())):
        assert not re.search(r"(src|href)=[\"']?(https?:)?//", page), "a page loads something from another host"
    for url in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", docs.text + client.get("/").text):
        assert client.get(url).status_code == 200, url
    assert "clf-serve" in client.get("/").text
