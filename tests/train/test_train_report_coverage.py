"""clf-train's test report gets the accuracy/coverage curve of the probabilities it reports (the temperature's)."""
from __future__ import annotations

import json

import numpy as np

from clfkit.report.coverage import coverage_metrics
from clfkit.spec import ModelSpec
from clfkit.train.report import write_test_report
from clfkit.vision.postprocess import softmax


def test_the_test_report_has_the_thresholds_for_95_and_99_percent(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 200)
    logits = rng.normal(size=(200, 3)) + 3.0 * np.eye(3)[labels]  # mostly right, with a spread of confidences
    spec = ModelSpec(class_names=("a", "b", "c"), input_size=32, resize_size=36, temperature=1.7)
    metrics = write_test_report(tmp_path, logits, labels, spec, {"a": 1, "b": 1, "c": 1})
    written = json.loads((tmp_path / "metrics.json").read_text())
    expected = coverage_metrics(softmax(logits, temperature=1.7), labels)  # the calibrated probabilities
    for key in ("reject_below_for_95", "reject_below_for_99", "coverage_curve"):
        assert written[key] == metrics[key] == expected[key]
    assert expected["reject_below_for_95"]["coverage"] > expected["reject_below_for_99"]["coverage"]
    assert expected != coverage_metrics(softmax(logits), labels)  # the temperature changed the thresholds
    assert (tmp_path / "coverage.png").stat().st_size > 1000
