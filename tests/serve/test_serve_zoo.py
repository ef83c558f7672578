"""clf-serve on the bad-input zoo: every decodable file gets a prediction, every other one a 400 with one line
naming the reason, and the server answers the next request as before.  Uploaded through the real API (the
framework's test client), with file names carried in the multipart field as a browser would send them."""
from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clfkit.runtime import Engine
from clfkit.serve.app import create_app
from clfkit.serve.config import ServeConfig
from zoo_files import make_zoo


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory):
    return make_zoo(tmp_path_factory.mktemp("serve-zoo") / "images")


def test_every_zoo_file_is_predicted_or_refused_with_a_400(zoo, tiny) -> None:
    engine = Engine.from_onnx(tiny.onnx, device="cpu", threads=1)
    with TestClient(create_app(engine, ServeConfig(max_batch=8, tta=2))) as client:
        for path in zoo.good:
            answer = client.post("/predict", files={"file": (path.name, path.read_bytes())})
            assert answer.status_code == 200, (path.name, answer.text)
            assert answer.json()["pred"] in tiny.spec.class_names
        uploadable = [p for p in zoo.bad if p.is_file()]  # a dangling or looping link has no bytes to send
        assert len(uploadable) == 6
        for path in uploadable:
            answer = client.post("/predict", files={"file": (path.name, path.read_bytes())})
            assert answer.status_code == 400, (path.name, answer.text)
            error = answer.json()["error"]
            assert "\n" not in error and error.strip(), error
            assert any(word in error for word in ("empty", "truncated", "not an image", "decompression",
                                                  "cannot identify", "damaged", "too large")), error
            assert client.post("/predict", files={"file": ("ok.jpg", zoo.good[0].read_bytes())}).status_code == 200

        batch = [("files", (p.name, p.read_bytes())) for p in [*zoo.good[:5], *uploadable]]
        results = client.post("/predict/batch", files=batch).json()["results"]
        assert [("error" in r) for r in results] == [False] * 5 + [True] * len(uploadable)
        assert client.get("/health").json()["status"] == "ok"
