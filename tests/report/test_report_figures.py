"""clfkit.report.figures and clfkit.io: PNGs that open, atomic writes, no leaked figures, no torch."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import assert_runs_without_torch, draw_image
from PIL import Image

from clfkit.report import figures
from clfkit.io import write_csv_matrix, write_json
from clfkit.report.metrics import classification_metrics, confusion_matrix


def _metrics(c: int, n: int = 200, seed: int = 0) -> tuple[dict, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    names = [f"class_{i:02d}_with_a_longish_name" if i % 4 == 0 else f"boat{i}" for i in range(c)]
    y = rng.integers(0, c, n)
    pred = np.where(rng.random(n) < 0.7, y, rng.integers(0, c, n))
    return classification_metrics(y, pred, names), confusion_matrix(y, pred, c), names


def _check_png(path: Path, folder: Path, min_size: tuple[int, int] = (300, 200)) -> tuple[int, int]:
    """The file is a readable PNG of plausible size, it is the only file in its folder, no figure left open."""
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        im.load()
        w, h = im.size
    assert w >= min_size[0] and h >= min_size[1], (w, h)
    assert w <= 5000 and h <= 5000, (w, h)
    assert [p.name for p in folder.iterdir()] == [path.name]  # no temp files left behind
    assert plt.get_fignums() == []
    return w, h


@pytest.mark.parametrize("c", [1, 20])
def test_confusion_matrix_and_per_class_figures(tmp_path: Path, c: int):
    m, cm, names = _metrics(c)
    out = figures.plot_confusion_matrix(cm, names, tmp_path / "cm" / "confusion_matrix.png")
    assert out == tmp_path / "cm" / "confusion_matrix.png"
    w, h = _check_png(out, tmp_path / "cm")
    counts = {name: 10 * (i + 1) for i, name in enumerate(names)}
    out = figures.plot_per_class(m, tmp_path / "pc" / "per_class.png", train_counts=counts)
    _check_png(out, tmp_path / "pc")
    if c == 20:  # the heatmap grows with the number of classes so 20 labels stay readable
        w1, _ = _check_png(figures.plot_confusion_matrix(cm[:1, :1], names[:1], tmp_path / "one" / "cm.png"),
                           tmp_path / "one")
        assert w > 1.5 * w1


def test_confusion_matrix_unnormalised_and_shape_check(tmp_path: Path):
    _, cm, names = _metrics(4)
    _check_png(figures.plot_confusion_matrix(cm, names, tmp_path / "cm.png", normalize=False), tmp_path)
    with pytest.raises(ValueError, match="3 class names"):
        figures.plot_confusion_matrix(cm, names[:3], tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()


def test_per_class_without_train_counts(tmp_path: Path):
    m, _, _ = _metrics(5)
    _check_png(figures.plot_per_class(m, tmp_path / "pc.png"), tmp_path)


def test_curves_tolerate_missing_keys_and_none(tmp_path: Path):
    history = [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "val_loss": None if i == 2 else 1.2 / (i + 1),
                "train_acc": 0.5 + 0.04 * i} for i in range(10)]
    history[4].pop("train_loss")
    history[5]["val_acc"] = float("nan")
    _check_png(figures.plot_curves(history, tmp_path / "a" / "curves.png"), tmp_path / "a")
    _check_png(figures.plot_curves([], tmp_path / "b" / "curves.png"), tmp_path / "b")
    _check_png(figures.plot_curves([{"train_loss": 0.7}], tmp_path / "c" / "curves.png"), tmp_path / "c")


def test_benchmark_figures(tmp_path: Path):
    rows = [{"backend": b, "batch_size": bs, "p50_ms": f * bs + 1.0, "images_per_s": 1000 * bs / (f * bs + 1)}
            for b, f in (("pytorch", 3.0), ("onnxruntime", 2.0), ("onnxruntime-int8", 1.0)) for bs in (1, 8, 64)]
    rows.append({"backend": "tensorrt", "batch_size": 8, "p50_ms": None, "images_per_s": None})  # failed run
    _check_png(figures.plot_latency(rows, tmp_path / "lat" / "latency.png"), tmp_path / "lat")
    _check_png(figures.plot_throughput(rows, tmp_path / "thr" / "throughput.png"), tmp_path / "thr")
    with pytest.raises(ValueError, match="'backend' and 'batch_size'"):
        figures.plot_latency([{"p50_ms": 3.0}], tmp_path / "bad.png")


@pytest.mark.parametrize("true_label", [None, "sailboat", "ferry"])
def test_image_panel(tmp_path: Path, true_label):
    image = draw_image(0, size=(320, 240))
    topk = [("sailboat", 0.7), ("motorboat", 0.2), ("kayak", 0.06), ("ferry", 0.03), ("tug", 0.01)]
    _check_png(figures.image_panel(image, topk, tmp_path / "panel.png", true_label=true_label), tmp_path)


def test_image_panel_accepts_non_rgb_images_and_a_title(tmp_path: Path):
    image = draw_image(1, size=(64, 200)).convert("L")
    _check_png(figures.image_panel(image, [("only", 1.0)], tmp_path / "p.png", title="a grey, tall photo"),
               tmp_path)


@pytest.mark.parametrize("n", [0, 1, 13])
def test_image_grid(tmp_path: Path, n: int):
    items = [(draw_image(i, size=(60 + 10 * (i % 3), 48), kind=i % 4), f"true: sailboat\npred: class_{i}")
             for i in range(n)]
    _check_png(figures.image_grid(items, tmp_path / "grid.png", cols=6, title="misclassified"), tmp_path,
               min_size=(200, 100))


def test_reliability_before_and_after_on_one_plot(tmp_path: Path):
    from clfkit.report.calibration import reliability

    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (300, 4))
    y = z.argmax(1)
    y[:60] = rng.integers(0, 4, 60)
    soft = lambda t: np.exp(z / t) / np.exp(z / t).sum(1, keepdims=True)  # noqa: E731
    curves = {"T = 1": reliability(soft(1.0), y), "T = 2": reliability(soft(2.0), y)}
    _check_png(figures.plot_reliability(curves, tmp_path / "reliability.png"), tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    _check_png(figures.plot_reliability({}, empty / "reliability.png"), empty)


def test_failed_figure_leaves_no_temp_file_and_keeps_old_png(tmp_path: Path):
    target = tmp_path / "cm.png"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        figures.plot_confusion_matrix(np.zeros((2, 3)), ["a", "b"], target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]


# --------------------------------------------------------------------------------------------- io
def test_write_json_converts_numpy_and_is_stable(tmp_path: Path):
    m, cm, _ = _metrics(3)
    obj = {"metrics": m, "cm": cm, "n": np.int64(3), "x": np.float32(0.5), "flag": np.bool_(True),
           "path": tmp_path, "tuple": (1, 2), "name": "Båt ⛵"}
    out = write_json(obj, tmp_path / "r" / "metrics.json")
    text = out.read_text(encoding="utf-8")
    assert "Båt ⛵" in text  # ensure_ascii=False
    loaded = json.loads(text)
    assert loaded["cm"] == cm.tolist() and loaded["n"] == 3 and loaded["x"] == 0.5 and loaded["flag"] is True
    assert loaded["metrics"]["class_names"] == m["class_names"]
    assert list(loaded) == sorted(loaded)
    assert [p.name for p in (tmp_path / "r").iterdir()] == ["metrics.json"]


def test_write_json_refuses_nan_naming_the_key_and_keeps_the_old_file(tmp_path: Path):
    target = tmp_path / "metrics.json"
    target.write_text("{}")
    with pytest.raises(ValueError, match=r"\$\.per_class\.cat\.f1 is nan"):
        write_json({"per_class": {"cat": {"f1": np.float64("nan")}}}, target)
    with pytest.raises(TypeError, match="set"):
        write_json({"a": {1, 2}}, target)
    assert target.read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_write_csv_matrix(tmp_path: Path):
    cm = np.array([[5, 1], [0, 3]])
    out = write_csv_matrix(cm, ["cat", "dog, big"], tmp_path / "confusion_matrix.csv")
    with open(out, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["true\\predicted", "cat", "dog, big"], ["cat", "5", "1"], ["dog, big", "0", "3"]]
    with pytest.raises(ValueError, match="3 class names"):
        write_csv_matrix(cm, ["a", "b", "c"], tmp_path / "bad.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["confusion_matrix.csv"]


# --------------------------------------------------------------------------------------------- imports
def test_report_imports_without_torch_and_metrics_without_matplotlib():
    assert_runs_without_torch(
        "import sys\n"
        "import clfkit.report.metrics\n"
        "assert 'matplotlib' not in sys.modules, 'metrics must stay pure numpy'\n"
        "import clfkit.report.figures, clfkit.io\n"
        "assert 'torch' not in sys.modules\n"
        "import matplotlib\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'figures must not touch pyplot'\n")
