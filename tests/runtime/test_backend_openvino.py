"""OpenVINO as a second runtime: the same .onnx file, the same predictions as onnxruntime, the same outputs,
and what ran recorded in every row."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from onnx_graphs import brightness_model, gray_photos

from clfkit.errors import ConfigError
from clfkit.runtime import Engine, backend_openvino, registry

pytest.importorskip("openvino")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return brightness_model(tmp_path / "bright.onnx")


@pytest.fixture(scope="module")
def conv_model(tmp_path_factory) -> Path:
    """A real exported classifier (convs, BatchNorm, pooling, a linear head) from clfkit's own exporter."""
    import torch

    from clfkit.export.graph import export_model
    from clfkit.models.classifier import Classifier
    from clfkit.spec import ModelSpec

    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
                                   torch.nn.Conv2d(8, 16, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    model = Classifier(backbone, 16, 3, backbone_name="test").eval()
    spec = ModelSpec(class_names=("a", "b", "c"), input_size=32, resize_size=36)
    return export_model(model, spec, tmp_path_factory.mktemp("ov") / "conv.onnx")


def test_openvino_predicts_what_onnxruntime_predicts(conv_model, tmp_path):
    photos = gray_photos(tmp_path / "gray")
    rng = np.random.default_rng(0)
    for i in range(4):  # and some colourful ones of other sizes
        from PIL import Image

        Image.fromarray(rng.integers(0, 255, (30 + 7 * i, 50, 3), dtype=np.uint8)).save(tmp_path / f"r{i}.png")
        photos.append(tmp_path / f"r{i}.png")
    ov = Engine.from_onnx(conv_model, runtime="openvino", threads=1)
    ort = Engine.from_onnx(conv_model, runtime="onnxruntime", device="cpu", threads=1)
    assert ov.runtime == "openvino" and ov.device == "cpu" and ov.precision == "fp32"
    assert ov.backend.precision == "fp32" and ov.provider == "OpenVINO CPU fp32"
    assert ov.spec == ort.spec and ov.input_format == "float32_nchw"
    for tta in (0, 3):
        got = list(ov.predict(photos, tta=tta, batch_size=3, keep_probs=True))
        want = list(ort.predict(photos, tta=tta, batch_size=3, keep_probs=True))
        assert [g.label for g in got] == [w.label for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.probs, w.probs, atol=1e-5)
            np.testing.assert_allclose(g.probs_no_tta, w.probs_no_tta, atol=1e-5)


def test_clf_infer_runs_openvino_and_says_so_in_every_row(model, tmp_path):
    from clfkit.cli.infer import infer_cmd

    photos = gray_photos(tmp_path / "photos")
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(infer_cmd, ["-m", str(model), str(photos[0].parent), "-o", str(out),
                                            "--runtime", "openvino", "--threads", "1", "--tta", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["pred"] for r in rows] == ["dark", "light", "dark"]
    assert {r["provider"] for r in rows} == {"OpenVINO CPU fp32"}
    assert "on OpenVINO CPU fp32" in result.output


def test_openvino_refuses_cuda_and_a_missing_install_in_one_line(model, monkeypatch):
    with pytest.raises(ConfigError, match="--runtime openvino runs on the CPU; for --device cuda use --runtime"):
        Engine.from_onnx(model, runtime="openvino", device="cuda")
    monkeypatch.setitem(registry._RUNTIMES, "openvino", registry.RuntimeInfo(
        "openvino", backend_openvino.open_openvino, lambda: "OpenVINO is not installed (pip install openvino)"))
    with pytest.raises(ConfigError, match="--runtime openvino: OpenVINO is not installed"):
        Engine.from_onnx(model, runtime="openvino")


def test_a_file_openvino_cannot_read_is_one_error(tmp_path):
    from clfkit.errors import ModelError

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07" + b"not a model" * 10)
    with pytest.raises(ModelError, match="bad.onnx"):
        Engine.from_onnx(bad, runtime="openvino")
