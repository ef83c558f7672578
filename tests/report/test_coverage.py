"""Accuracy against coverage (clfkit.report.coverage) on hand-made examples whose numbers are worked out here."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from clfkit.report.coverage import (TABLE_THRESHOLDS, at_threshold, coverage_curve, coverage_metrics, is_kept,
                                    threshold_for)
from clfkit.report.figures import plot_coverage


def two_class(top: list[float], right: list[bool]) -> tuple[np.ndarray, np.ndarray]:
    """Rows [p, 1 - p] (class 0 on top for p >= 0.5) with true class 0 where ``right``, else 1."""
    p = np.array(top, dtype=np.float64)
    return np.stack([p, 1 - p], axis=1), np.where(right, 0, 1)


def test_the_curve_of_a_hand_made_example():
    # Five photos, most confident first: right, wrong, right, right, wrong.  Row 3 has class 1 on top (0.7).
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]])
    y_true = np.array([0, 1, 1, 0, 1])
    curve = coverage_curve(probs, y_true)
    assert curve.total == 5
    assert curve.threshold.tolist() == [0.9, 0.8, 0.7, 0.6, 0.55]
    assert curve.kept.tolist() == [1, 2, 3, 4, 5]
    assert curve.right.tolist() == [1, 1, 2, 3, 3]
    assert curve.coverage.tolist() == [0.2, 0.4, 0.6, 0.8, 1.0]
    assert curve.accuracy.tolist() == pytest.approx([1.0, 0.5, 2 / 3, 0.75, 0.6])
    # Between two top probabilities a threshold keeps what the higher one keeps; 0 keeps everything.
    assert at_threshold(probs, y_true, 0.65) == {"threshold": 0.65, "kept": 3, "coverage": 0.6,
                                                 "accuracy": pytest.approx(2 / 3)}
    assert at_threshold(probs, y_true, 0.0)["kept"] == 5
    assert at_threshold(probs, y_true, 0.95) == {"threshold": 0.95, "kept": 0, "coverage": 0.0, "accuracy": None}


def test_tied_probabilities_are_one_point_kept_together():
    probs, y_true = two_class([0.9, 0.7, 0.7, 0.6], [True, True, False, True])
    curve = coverage_curve(probs, y_true)
    assert curve.threshold.tolist() == [0.9, 0.7, 0.6]
    assert curve.kept.tolist() == [1, 3, 4] and curve.right.tolist() == [1, 2, 3]


def test_thresholds_for_95_and_99_percent():
    # 100 photos, top probability 0.996, 0.992, ..., 0.600; wrong at ranks 30, 60, 70, 80 and 90.
    top = [(996 - 4 * i) / 1000 for i in range(100)]
    right = [i + 1 not in (30, 60, 70, 80, 90) for i in range(100)]
    probs, y_true = two_class(top, right)
    curve = coverage_curve(probs, y_true)
    # 99 %: one mistake needs 100 kept to stay at 99 %, so only the 29 before the first mistake reach it.
    assert threshold_for(curve, 0.99) == {"threshold": top[28], "kept": 29, "coverage": 0.29, "accuracy": 1.0}
    # 95 %: exactly 95 % at 80 kept (76/80), below it at 90 kept (85/90), and exactly back at 95/100 with
    # everything kept: the highest coverage wins, and exactly 95 % counts as reaching it.
    assert threshold_for(curve, 0.95) == {"threshold": 0.6, "kept": 100, "coverage": 1.0, "accuracy": 0.95}
    metrics = coverage_metrics(probs, y_true)
    assert metrics["reject_below_for_99"]["kept"] == 29 and metrics["reject_below_for_95"]["kept"] == 100


def test_an_unreachable_accuracy_is_null():
    # The most confident photo is wrong: no threshold keeps only right ones.
    probs, y_true = two_class([0.99, 0.9, 0.8, 0.7], [False, True, False, True])
    curve = coverage_curve(probs, y_true)
    assert threshold_for(curve, 0.99) is None and threshold_for(curve, 0.95) is None
    assert threshold_for(curve, 0.5) == {"threshold": 0.7, "kept": 4, "coverage": 1.0, "accuracy": 0.5}
    metrics = coverage_metrics(probs, y_true)
    assert metrics["reject_below_for_95"] is None and metrics["reject_below_for_99"] is None


def test_the_curve_counts_what_the_rule_keeps():
    # The curve counts for every threshold at once; is_kept decides one row at a time: they must agree,
    # ties included (probabilities rounded to 2 decimals make many).
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(300, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    probs = np.round(probs, 2)
    probs /= probs.sum(1, keepdims=True)
    y_true = rng.integers(0, 4, 300)
    curve = coverage_curve(probs, y_true)
    top, correct = probs.max(1), probs.argmax(1) == y_true
    for t, kept, right in zip(curve.threshold, curve.kept, curve.right):
        mask = is_kept(top, t)
        assert (kept, right) == (mask.sum(), correct[mask].sum())
    assert curve.kept[-1] == 300 and np.all(np.diff(curve.threshold) < 0)


def test_thresholds_are_rounded_down_so_they_keep_their_own_row():
    probs, y_true = two_class([0.87654379, 0.7], [True, False])
    curve = coverage_curve(probs, y_true)
    assert curve.threshold[0] == 0.876543  # printed with 6 decimals and given back as --reject-below...
    assert at_threshold(probs, y_true, 0.876543)["kept"] == 1  # ...it keeps that photo
    assert is_kept(0.5, None) is True and not is_kept(0.49, 0.5) and is_kept(0.5, 0.5)


def test_metrics_table_and_the_run_threshold():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]])
    y_true = np.array([0, 1, 1, 0, 1])
    metrics = coverage_metrics(probs, y_true, reject_below=0.65)
    table = {row["threshold"]: row for row in metrics["coverage_curve"]}
    assert sorted(table) == sorted({*TABLE_THRESHOLDS, 0.65})
    assert table[0.0] == {"threshold": 0.0, "kept": 5, "coverage": 1.0, "accuracy": 0.6}
    assert table[0.8]["kept"] == 2 and table[0.8]["accuracy"] == 0.5
    assert metrics["kept_at_reject_below"] == table[0.65] == at_threshold(probs, y_true, 0.65)
    assert "kept_at_reject_below" not in coverage_metrics(probs, y_true)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match=r"\(N, C\)"):
        coverage_curve(np.ones(3), np.zeros(3))


def test_plot_coverage_writes_a_png(tmp_path):
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.55, 0.45]])
    y_true = np.array([0, 1, 1, 0, 1])
    path = plot_coverage(coverage_curve(probs, y_true), tmp_path / "coverage.png",
                         coverage_metrics(probs, y_true, reject_below=0.65))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 600
    empty = plot_coverage(coverage_curve(np.zeros((0, 2)), np.zeros(0, int)), tmp_path / "empty.png")
    assert empty.stat().st_size > 0
