"""clf-infer through click's CliRunner: outputs, exit codes, labelled evaluation and the report folder."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from clfkit.report.intervals import format_interval, wilson
from clfkit.runtime.infer import EXIT_SOME_FAILED
from clfkit.cli.infer import infer_cmd
from helpers import draw_image, make_labelled_folder


def _invoke(*args: str):
    return CliRunner().invoke(infer_cmd, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """cat 4 (+1 green 'cat' the model calls dog), dog 3, owl 2, an unknown folder, a loose file."""
    root = make_labelled_folder(tmp_path / "test", {"cat": 4, "dog": 3, "owl": 2})
    draw_image(99, kind=1).save(root / "cat" / "z_green.jpg")
    (root / "zebra").mkdir()
    draw_image(98, kind=2).save(root / "zebra" / "z.jpg")
    draw_image(97, kind=0).save(root / "loose.jpg")
    return root


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(newline="", encoding="utf-8")))


def test_predicts_a_folder_to_csv_and_exits_0(tiny, labelled, tmp_path):
    out = tmp_path / "preds.csv"
    result = _invoke("--model", tiny.onnx, labelled, "--out", out, "--device", "cpu", "--topk", "2")
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert len(rows) == 12
    assert [r["pred"] for r in rows if "/owl/" in r["path"]] == ["owl", "owl"]
    assert {"top1", "top2_prob"} <= set(rows[0]) and "top3" not in rows[0]
    assert {r["provider"] for r in rows} == {"CPUExecutionProvider"}
    assert all(r["error"] == "" for r in rows)
    assert "on CPUExecutionProvider" in result.stderr
    assert "predicted 12 of 12 files" in result.stderr


def test_bad_files_give_exit_code_3_and_every_good_row(tiny, labelled, tmp_path):
    (labelled / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (labelled / "owl" / "empty.png").write_bytes(b"")
    out = tmp_path / "preds.jsonl"
    result = _invoke("-m", tiny.onnx, labelled, "-o", out, "--device", "cpu")
    assert result.exit_code == EXIT_SOME_FAILED == 3
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 14 and sum(r["error"] is not None for r in rows) == 2
    assert all(r["pred"] for r in rows if r["error"] is None)
    assert "2 file(s) could not be read" in result.stderr


@pytest.mark.parametrize("name", ["preds.csv", "preds.jsonl", "preds.json"])
def test_every_output_format_from_the_command(tiny, labelled, tmp_path, name):
    out = tmp_path / name
    result = _invoke("-m", tiny.onnx, labelled / "owl", labelled / "cat" / "img_000.jpg", "-o", out, "--tta", "3")
    assert result.exit_code == 0, result.output
    text = out.read_text(encoding="utf-8")
    if name.endswith(".csv"):
        rows = _rows(out)
    elif name.endswith(".jsonl"):
        rows = [json.loads(line) for line in text.splitlines()]
    else:
        rows = json.loads(text)
    assert [Path(r["path"]).name for r in rows] == ["img_000.jpg", "img_001.jpg", "img_000.jpg"]
    assert [r["pred"] for r in rows] == ["owl", "owl", "cat"]


def test_csv_on_stdout_without_out(tiny, labelled):
    result = _invoke("-m", tiny.onnx, str(labelled / "dog" / "*.jpg"))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("path,pred,prob,index,top1") and len(lines) == 4


def test_model_defaults_to_model_onnx_here(tiny, labelled, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke(labelled / "owl")
    assert result.exit_code == 1 and "model.onnx: model not found" in result.stderr
    shutil.copy(tiny.onnx, tmp_path / "model.onnx")
    assert _invoke(labelled / "owl", "-o", "p.csv").exit_code == 0
    assert len(_rows(tmp_path / "p.csv")) == 2


def test_user_errors_are_one_line_with_exit_code_1(tiny, tmp_path):
    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("hello")
    result = _invoke("-m", not_onnx, tmp_path)
    assert result.exit_code == 1 and "cannot load this file as an ONNX model" in result.stderr
    assert "Traceback" not in result.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _invoke("-m", tiny.onnx, empty)
    assert result.exit_code == 1 and "no image files found" in result.stderr
    result = _invoke("-m", tiny.onnx, empty, "--visualize", "2")
    assert result.exit_code == 1 and "--visualize needs --report" in result.stderr
    result = _invoke("-m", tiny.onnx, empty, "-o", tmp_path / "p.txt")
    assert result.exit_code == 1


def test_labelled_report_with_tta(tiny, labelled, tmp_path):
    report = tmp_path / "report"
    result = _invoke("-m", tiny.onnx, labelled, "-o", tmp_path / "p.csv", "--report", report, "--tta", "4",
                     "--visualize", "2", "--device", "cpu")
    assert result.exit_code == 0, result.output
    metrics = json.loads((report / "metrics.json").read_text())
    # 10 labelled images (the green "cat" is wrong); zebra/ and the loose file are predicted but not scored
    assert metrics["num_samples"] == 10
    assert metrics["accuracy"] == pytest.approx(0.9) and metrics["accuracy_no_tta"] == pytest.approx(0.9)
    assert 0 < metrics["macro_f1"] <= 1 and metrics["per_class"]["cat"]["support"] == 5
    assert set(metrics["per_class"]["dog"]) == {"precision", "recall", "f1", "support", "precision_ci95",
                                                "recall_ci95"}
    # 95 % intervals: Wilson for the 9-of-10 accuracies, the bootstrap for macro-F1; each contains its number
    assert metrics["accuracy_ci95"] == pytest.approx(wilson(9, 10)) == metrics["accuracy_no_tta_ci95"]
    for key in ("macro_f1", "macro_f1_no_tta", "balanced_accuracy"):
        lo, hi = metrics[f"{key}_ci95"]
        assert lo <= metrics[key] <= hi, key
    table = metrics["per_class_tta_vs_no_tta"]
    assert [r["class"] for r in table] == ["cat", "dog", "owl", "(overall)"]
    assert set(table[0]) == {"class", "support", "no_tta", "tta", "delta", "no_tta_ci95", "tta_ci95"}
    assert metrics["provider"] == "CPUExecutionProvider" and metrics["tta"] == 4
    assert metrics["tta_views"] == ["center", "hflip", "zoom", "zoom_hflip"]
    assert metrics["unknown_folders"] == {"zebra": 1}
    assert metrics["files"] == {"total": 12, "predicted": 12, "failed": 0, "evaluated": 10,
                                "unlabelled": {"(root)": 1, "zebra": 1}}
    cm = list(csv.reader((report / "confusion_matrix.csv").open()))
    assert cm[0] == ["true\\predicted", "cat", "dog", "owl"] and cm[1] == ["cat", "4", "1", "0"]
    for name in ("confusion_matrix.png", "per_class.png", "misclassified.png", "grids/cat.png", "grids/dog.png",
                 "grids/owl.png", "grids/unlabelled.png"):
        assert (report / name).stat().st_size > 1000, name
    assert len(list((report / "panels").glob("*.png"))) == 2
    assert "zebra: folder is not a class of the model" in result.stderr
    ci = format_interval(wilson(9, 10))
    assert f"accuracy 0.9000 {ci} with TTA (4 views), 0.9000 {ci} without (95 % intervals)" in result.stderr
    assert "(overall)" in result.stdout  # the per-class TTA table


def test_accuracy_no_tta_comes_from_the_first_view_of_the_same_run(tiny, labelled, tmp_path):
    plain = tmp_path / "plain"
    assert _invoke("-m", tiny.onnx, labelled, "-o", tmp_path / "a.csv", "--report", plain).exit_code == 0
    tta = tmp_path / "tta"
    assert _invoke("-m", tiny.onnx, labelled, "-o", tmp_path / "b.csv", "--report", tta, "--tta", "12").exit_code == 0
    a, b = (json.loads((d / "metrics.json").read_text()) for d in (plain, tta))
    assert b["accuracy_no_tta"] == a["accuracy"] == a["accuracy_no_tta"]
    assert b["log_loss"] != a["log_loss"]  # the averaged probabilities really differ
    assert a["tta_views"] == ["center"] and len(b["tta_views"]) == 12 and b["tta_views"][-1] == "random_1"


def test_unlabelled_report_has_predictions_and_figures(tiny, labelled, tmp_path):
    report = tmp_path / "report"
    result = _invoke("-m", tiny.onnx, labelled / "cat", labelled / "owl", "-o", tmp_path / "p.csv", "--report",
                     report, "--visualize", "1")
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "summary.json").read_text())
    assert summary["predicted_per_class"] == {"cat": 4, "dog": 1, "owl": 2}
    assert summary["provider"] == "CPUExecutionProvider"
    assert not (report / "metrics.json").exists()
    assert sorted(p.name for p in (report / "grids").iterdir()) == ["cat.png", "dog.png", "owl.png"]
    assert "not a labelled folder" in result.stderr


def test_no_recursive_and_globs(tiny, labelled, tmp_path):
    out = tmp_path / "p.csv"
    assert _invoke("-m", tiny.onnx, labelled, "--no-recursive", "-o", out).exit_code == 0
    assert [Path(r["path"]).name for r in _rows(out)] == ["loose.jpg"]
    assert _invoke("-m", tiny.onnx, str(labelled / "*" / "img_00[01].jpg"), "-o", out).exit_code == 0
    assert len(_rows(out)) == 6


def test_help_documents_formats_views_and_exit_codes():
    result = CliRunner().invoke(infer_cmd, ["--help"])
    assert result.exit_code == 0
    for text in ("path,pred,prob,index,top1", "wide_hflip", "Exit codes", "3 some files", "--fast-decode"):
        assert text in result.output


def test_the_runtime_choice_is_printed_and_written(exported, tmp_path):
    """--runtime/--precision auto says what runs and why; the rows and the report name it."""
    folder = make_labelled_folder(tmp_path / "test", {"cat": 2, "dog": 2, "owl": 2})
    model = exported[0].files["fp32"]
    out, report = tmp_path / "p.csv", tmp_path / "report"
    result = _invoke("--model", model, folder, "--out", out, "--report", report, "--device", "cpu")
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if x.startswith("clf-infer: runtime "))
    assert "verified on this machine" in line  # the export's record decided
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["runtime"] in line and metrics["chosen_by"] in line
    assert {r["provider"] for r in _rows(out)} == {"CPUExecutionProvider" if metrics["runtime"] == "onnxruntime"
                                                   else f"OpenVINO CPU {metrics['precision_run']}"}
    # forcing one runtime and precision runs exactly that, the int8 file beside the model included
    result = _invoke("--model", model, folder, "--out", out, "--runtime", "openvino", "--precision", "int8")
    assert result.exit_code == 0, result.output
    assert {r["provider"] for r in _rows(out)} == {"OpenVINO CPU int8"}
    result = _invoke("--model", model, folder, "--runtime", "onnxruntime", "--precision", "bf16")
    assert result.exit_code == 1 and "--precision bf16: onnxruntime runs" in result.output
    assert "Traceback" not in result.output
