"""clf-infer --reject-below: "unknown" rows, their count, the accuracy/coverage report and bad values."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import clfkit
from clfkit.cli.infer import infer_cmd
from helpers import draw_image, make_labelled_folder, one_error_line


def _invoke(*args: str):
    return CliRunner().invoke(infer_cmd, [str(a) for a in args], catch_exceptions=False)


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.open(newline="", encoding="utf-8")))


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """cat 4 (+1 green 'cat' the model calls dog), dog 3, owl 3."""
    root = make_labelled_folder(tmp_path / "test", {"cat": 4, "dog": 3, "owl": 3})
    draw_image(99, kind=1).save(root / "cat" / "z_green.jpg")
    return root


def _plain(tiny, labelled: Path, tmp_path: Path) -> list[dict[str, str]]:
    out = tmp_path / "plain.csv"
    assert _invoke("-m", tiny.onnx, labelled, "-o", out, "--device", "cpu", "--no-progress").exit_code == 0
    return _rows(out)


def _between(rows: list[dict[str, str]]) -> float:
    """A threshold with photos on both sides of it: halfway between the two middle top probabilities."""
    probs = sorted(float(r["prob"]) for r in rows)
    middle = len(probs) // 2
    assert probs[middle - 1] < probs[middle], probs
    return (probs[middle - 1] + probs[middle]) / 2


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_rows_below_the_threshold_say_unknown_and_keep_the_top_class(tiny, labelled, tmp_path, suffix):
    plain = {r["path"]: r for r in _plain(tiny, labelled, tmp_path)}
    p = _between(list(plain.values()))
    out = tmp_path / f"preds{suffix}"
    result = _invoke("-m", tiny.onnx, labelled, "-o", out, "--device", "cpu", "--reject-below", p, "--topk", "2")
    assert result.exit_code == 0, result.output
    if suffix == ".csv":
        rows = _rows(out)
        assert list(rows[0]) == ["path", "pred", "prob", "index", "top1", "top1_prob", "top2", "top2_prob",
                                 "error", "provider"]  # the columns of a run without --reject-below
        got = {r["path"]: (r["pred"], float(r["prob"]), int(r["index"]), r["top1"]) for r in rows}
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        got = {r["path"]: (r["pred"], r["prob"], r["index"], r["topk"][0]["label"]) for r in rows}
    unknown = 0
    for path, (pred, prob, index, top1) in got.items():
        before = plain[path]
        assert (prob, index, top1) == (pytest.approx(float(before["prob"]), abs=1e-6), int(before["index"]),
                                       before["pred"])
        if prob < p:
            assert pred == "unknown"
            unknown += 1
        else:
            assert pred == before["pred"]
    assert 0 < unknown < len(got)
    assert f"{unknown} of {len(got)} predictions below {p:g}: unknown" in result.stderr


def test_the_report_counts_them_and_gives_accuracy_against_coverage(tiny, labelled, tmp_path):
    plain = _plain(tiny, labelled, tmp_path)
    p = _between(plain)
    report = tmp_path / "report"
    result = _invoke("-m", tiny.onnx, labelled, "-o", tmp_path / "p.csv", "--device", "cpu", "--report", report,
                     "--reject-below", p, "--tta", "2")
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "p.csv")
    metrics = json.loads((report / "metrics.json").read_text())
    unknown = [r for r in rows if r["pred"] == "unknown"]
    assert metrics["reject_below"] == p and metrics["rejected"] == len(unknown) > 0
    # The accuracy is the top class's over every photo, as without --reject-below; the kept ones are apart.
    true = {r["path"]: Path(r["path"]).parent.name for r in rows}
    right = [true[r["path"]] == r["top1"] for r in rows]
    assert metrics["accuracy"] == pytest.approx(np.mean(right))
    kept = [ok for r, ok in zip(rows, right) if r["pred"] != "unknown"]
    at = metrics["kept_at_reject_below"]
    assert (at["threshold"], at["kept"]) == (p, len(kept))
    assert at["coverage"] == pytest.approx(len(kept) / len(rows)) and at["accuracy"] == pytest.approx(np.mean(kept))
    assert p in [row["threshold"] for row in metrics["coverage_curve"]]
    for key in ("reject_below_for_95", "reject_below_for_99"):
        found = metrics[key]
        assert found is None or (0 < found["kept"] <= len(rows) and found["accuracy"] >= int(key[-2:]) / 100)
    assert (report / "coverage.png").stat().st_size > 0
    assert f"at --reject-below {p:g}: {len(kept)} of {len(rows)} kept" in result.stderr
    assert "for 95 % accuracy" in result.stderr and "for 99 % accuracy" in result.stderr


def test_a_report_without_the_flag_still_gives_the_thresholds(tiny, labelled, tmp_path):
    report = tmp_path / "report"
    assert _invoke("-m", tiny.onnx, labelled, "--device", "cpu", "--report", report, "-o", tmp_path / "p.csv"
                   ).exit_code == 0
    metrics = json.loads((report / "metrics.json").read_text())
    assert metrics["reject_below"] is None and metrics["rejected"] is None
    assert "kept_at_reject_below" not in metrics and "reject_below_for_95" in metrics
    assert (report / "coverage.png").is_file()


@pytest.mark.parametrize("value", ["0", "1", "-1", "1.5", "nan"])
def test_out_of_range_values_are_one_line_before_the_model_loads(tmp_path, labelled, value):
    # The model does not exist: the threshold is refused first.
    result = _invoke("-m", tmp_path / "missing.onnx", labelled, "--reject-below", value)
    assert "--reject-below must be between 0 and 1" in one_error_line(result)


def test_a_value_that_is_no_number_is_a_usage_error(tiny, labelled):
    result = _invoke("-m", tiny.onnx, labelled, "--reject-below", "abc")
    assert result.exit_code == 2 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--reject-below" in errors[0] and "'abc'" in errors[0]


def test_a_model_with_a_class_named_unknown_is_refused(tiny_unknown_class, labelled, tmp_path):
    result = _invoke("-m", tiny_unknown_class, labelled, "--device", "cpu", "--reject-below", "0.5",
                     "-o", tmp_path / "p.csv")
    assert "has a class named 'unknown'" in one_error_line(result)
    assert not (tmp_path / "p.csv").exists()
    # Without the flag the model runs as any other, and its class "unknown" is a plain class.
    assert _invoke("-m", tiny_unknown_class, labelled, "--device", "cpu", "-o", tmp_path / "p.csv").exit_code == 0


def test_the_python_api_takes_the_same_threshold(tiny, labelled, tiny_unknown_class):
    model = clfkit.load_model(tiny.onnx, device="cpu", log=lambda msg: None)
    paths = sorted(labelled.rglob("*.jpg"))
    plain = list(model.predict(paths, workers=0))
    p = float(np.median([pred.prob for pred in plain]))
    for before, pred in zip(plain, model.predict(paths, workers=0, reject_below=p)):
        assert (pred.index, pred.prob, pred.topk) == (before.index, before.prob, before.topk)
        assert pred.rejected == (before.prob < p) and not before.rejected
        assert pred.label == ("unknown" if pred.rejected else before.label)
    with pytest.raises(clfkit.errors.ConfigError, match="--reject-below"):
        next(model.predict(paths, reject_below=2))
    other = clfkit.load_model(tiny_unknown_class, device="cpu", log=lambda msg: None)
    with pytest.raises(clfkit.errors.ConfigError, match="class named 'unknown'"):
        next(other.predict(paths, reject_below=0.5))


def test_an_unlabelled_report_counts_them_too(tiny, labelled, tmp_path):
    files = sorted(labelled.rglob("*.jpg"))
    loose = tmp_path / "loose"
    loose.mkdir()
    for i, f in enumerate(files):
        (loose / f"{i:02d}.jpg").write_bytes(f.read_bytes())
    p = _between(_plain(tiny, labelled, tmp_path))
    out, report = tmp_path / "loose.csv", tmp_path / "report"
    result = _invoke("-m", tiny.onnx, loose, "-o", out, "--device", "cpu", "--report", report, "--reject-below", p)
    assert result.exit_code == 0, result.output
    summary = json.loads((report / "summary.json").read_text())
    unknown = sum(r["pred"] == "unknown" for r in _rows(out))
    assert (summary["reject_below"], summary["rejected"]) == (p, unknown) and unknown > 0
    assert sum(summary["predicted_per_class"].values()) + unknown == len(files)
