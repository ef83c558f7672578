"""clfkit.report.metrics: hand-computed examples, zero-division cases, validation, properties, sklearn oracle."""
from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clfkit.report.intervals import wilson
from clfkit.report.metrics import (classification_metrics, compare_per_class, confusion_matrix, format_metrics_table, log_loss, per_class_table, topk_accuracy)
from clfkit.vision.postprocess import softmax

# y_true supports 3/2/1; cm = [[2,1,0],[0,1,1],[0,0,1]] → precision 1, .5, .5; recall 2/3, .5, 1; F1 .8, .5, 2/3
Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
NAMES = ["cat", "dog", "owl"]


def test_confusion_matrix_rows_are_true_and_columns_predicted():
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.dtype == np.int64
    np.testing.assert_array_equal(cm, [[2, 1, 0], [0, 1, 1], [0, 0, 1]])


def test_three_class_example_matches_hand_computation():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["num_samples"] == 6
    assert m["class_names"] == NAMES
    expected = {"cat": (1.0, 2 / 3, 0.8, 3), "dog": (0.5, 0.5, 0.5, 2), "owl": (0.5, 1.0, 2 / 3, 1)}
    for name, (p, r, f1, support) in expected.items():
        pc = m["per_class"][name]
        assert pc["precision"] == pytest.approx(p)
        assert pc["recall"] == pytest.approx(r)
        assert pc["f1"] == pytest.approx(f1)
        assert pc["support"] == support
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 1 * 2 / 3) / 6)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 0.5 + 1.0) / 3)
    assert "top5_accuracy" not in m and "log_loss" not in m


def test_class_never_predicted_gets_zero_precision_not_nan():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no divide-by-zero RuntimeWarning either
        m = classification_metrics([0, 1, 2, 2], [0, 1, 1, 1], ["a", "b", "c"])
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 2,
                                   "precision_ci95": None, "recall_ci95": wilson(0, 2)}
    assert m["per_class"]["b"]["precision"] == pytest.approx(1 / 3)
    assert m["per_class"]["b"]["f1"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((1.0 + 0.5 + 0.0) / 3)


def test_class_absent_from_data_does_not_drag_macro_scores_down():
    with_absent = classification_metrics(Y_TRUE, Y_PRED, NAMES + ["eel"])
    without = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    assert with_absent["per_class"]["eel"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                               "precision_ci95": None, "recall_ci95": None}
    for key in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy"):
        assert with_absent[key] == pytest.approx(without[key])


def test_predicted_class_without_support_counts_in_macro_f1_but_not_balanced_accuracy():
    m = classification_metrics([0, 0], [0, 1], ["a", "b"])
    assert m["per_class"]["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0,
                                   "precision_ci95": wilson(0, 1), "recall_ci95": None}
    assert m["macro_f1"] == pytest.approx((2 / 3 + 0.0) / 2)
    assert m["balanced_accuracy"] == pytest.approx(0.5)


def test_perfect_predictions_score_one_everywhere():
    y = [0, 1, 2, 3, 4, 5, 6, 1, 2]
    probs = np.eye(7)[y]
    m = classification_metrics(y, y, [f"c{i}" for i in range(7)], probs=probs)
    for key in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy", "top5_accuracy"):
        assert m[key] == 1.0
    assert m["log_loss"] == pytest.approx(0.0, abs=1e-12)
    assert all(pc["f1"] == 1.0 for pc in m["per_class"].values())


def test_top5_only_reported_with_more_than_five_classes():
    probs = np.full((2, 5), 0.2)
    m = classification_metrics([0, 1], [0, 0], list("abcde"), probs=probs)
    assert "top5_accuracy" not in m
    assert m["log_loss"] == pytest.approx(-math.log(0.2))


def test_topk_accuracy_hand_example_and_ties_follow_argmax():
    probs = np.array([[0.1, 0.6, 0.3],   # true 2 is 2nd
                      [0.7, 0.2, 0.1],   # true 0 is 1st
                      [0.5, 0.3, 0.2]])  # true 2 is 3rd
    y = [2, 0, 2]
    assert topk_accuracy(probs, y, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(probs, y, 2) == pytest.approx(2 / 3)
    assert topk_accuracy(probs, y, 3) == 1.0
    assert topk_accuracy(probs, y, 10) == 1.0
    # a uniform row: argmax says class 0, so top-1 must agree (ties go to the lower index)
    uniform = np.full((2, 4), 0.25)
    assert topk_accuracy(uniform, [0, 3], 1) == 0.5
    assert topk_accuracy(uniform, [0, 3], 3) == 0.5
    assert topk_accuracy(uniform, [0, 3], 4) == 1.0


def test_softmax_is_stable_with_large_logits():
    logits = np.array([[1000.0, 1000.0, -1000.0], [-1e30, 0.0, 1e30], [3.0, 1.0, 0.2]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p = softmax(logits)
    assert p.dtype == np.float32
    assert np.all(np.isfinite(p))
    np.testing.assert_allclose(p[0], [0.5, 0.5, 0.0], atol=1e-7)
    np.testing.assert_allclose(p[1], [0.0, 0.0, 1.0], atol=1e-7)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(softmax(logits[2:] + 500.0), p[2:], rtol=1e-6)  # shift invariance
    np.testing.assert_allclose(softmax(logits.T, axis=0), p.T, atol=1e-7)


def test_log_loss_hand_example():
    probs = [[0.5, 0.5], [0.9, 0.1]]
    assert log_loss(probs, [0, 1]) == pytest.approx(-(math.log(0.5) + math.log(0.1)) / 2)
    # a confident mistake is large but finite (probabilities are clipped)
    assert 30 < log_loss([[1.0, 0.0]], [1]) < 40


@pytest.mark.parametrize("y_true, y_pred, match", [
    ([0, 1, 2], [0, 1], "3 labels but y_pred has 2"),
    ([0, 1, 3], [0, 1, 2], "y_true holds label 3 but there are 3 classes"),
    ([0, -1, 2], [0, 1, 2], "y_true holds label -1"),
    ([0, 1, 2], [0, 1, 5], "y_pred holds label 5"),
    ([[0, 1]], [[0, 1]], "1-D"),
    (["a", "b"], [0, 1], "integer class indices"),
    ([0.5, 1.0], [0, 1], "non-integral"),
    ([], [], "no samples"),
])
def test_bad_labels_raise_clear_value_errors(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        classification_metrics(y_true, y_pred, NAMES)


def test_bad_probs_and_names_raise_clear_value_errors():
    with pytest.raises(ValueError, match=r"shape \(N, C\) = \(6, 3\)"):
        classification_metrics(Y_TRUE, Y_PRED, NAMES, probs=np.full((6, 4), 0.25))
    with pytest.raises(ValueError, match="if these are logits, pass softmax"):
        classification_metrics(Y_TRUE, Y_PRED, NAMES, probs=np.random.default_rng(0).normal(size=(6, 3)))
    with pytest.raises(ValueError, match="NaN"):
        classification_metrics(Y_TRUE, Y_PRED, NAMES, probs=np.full((6, 3), np.nan))
    with pytest.raises(ValueError, match="repeated: \\['cat'\\]"):
        classification_metrics(Y_TRUE, Y_PRED, ["cat", "dog", "cat"])
    with pytest.raises(ValueError, match="k must be at least 1"):
        topk_accuracy(np.eye(3), [0, 1, 2], 0)


def test_float_labels_holding_integers_are_accepted():
    m = classification_metrics(np.array(Y_TRUE, dtype=float), np.array(Y_PRED, dtype=np.int32), NAMES)
    assert m["accuracy"] == pytest.approx(4 / 6)


def test_tables_and_comparison():
    a = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    b = classification_metrics(Y_TRUE, Y_TRUE, NAMES)
    rows = per_class_table(a, train_counts={"cat": 30, "owl": 10})
    assert [r["class"] for r in rows] == NAMES
    assert rows[0] == {"class": "cat", "support": 3, "precision": 1.0, "recall": pytest.approx(2 / 3),
                       "f1": pytest.approx(0.8), "train_count": 30,
                       "precision_ci95": wilson(2, 2), "recall_ci95": wilson(2, 3)}
    assert rows[1]["train_count"] is None
    assert [r["train_count"] for r in per_class_table(a, [1, 2, 3])] == [1, 2, 3]
    with pytest.raises(ValueError, match="2 entries but there are 3 classes"):
        per_class_table(a, [1, 2])

    text = format_metrics_table(a)
    lines = text.splitlines()
    assert lines[0].split() == ["class", "precision", "recall", "recall", "95", "%", "CI", "F1", "support"]
    assert len({len(line) for line in lines[:5]}) == 1  # fixed width: header, rule and class rows align
    assert "cat" in text and "owl" in text
    assert re.search(r"^accuracy\s+0\.6667\s+\[", text, re.M) and re.search(r"^macro F1\s+0\.6556\s+\[", text, re.M)

    cmp = compare_per_class(a, b, "no-TTA", "TTA")
    assert [r["class"] for r in cmp] == NAMES + ["(overall)"]
    assert cmp[0]["no-TTA"] == pytest.approx(2 / 3) and cmp[0]["TTA"] == 1.0
    assert cmp[0]["delta"] == pytest.approx(1 / 3)
    assert cmp[-1]["delta"] == pytest.approx(1 - 4 / 6) and cmp[-1]["support"] == 6
    with pytest.raises(ValueError, match="same data"):
        compare_per_class(a, classification_metrics([0, 1, 2], [0, 1, 2], NAMES), "x", "y")
    with pytest.raises(ValueError, match="different classes"):
        compare_per_class(a, classification_metrics(Y_TRUE, Y_PRED, ["a", "b", "c"]), "x", "y")
    with pytest.raises(ValueError, match="labels must differ"):
        compare_per_class(a, b, "delta", "TTA")


@st.composite
def _predictions(draw):
    c = draw(st.integers(1, 8))
    n = draw(st.integers(1, 60))
    y_true = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    y_pred = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    return c, np.array(y_true), np.array(y_pred)


@settings(max_examples=150, deadline=None)
@given(_predictions())
def test_metric_properties(data):
    c, y_true, y_pred = data
    names = [f"c{i}" for i in range(c)]
    m = classification_metrics(y_true, y_pred, names)
    cm = confusion_matrix(y_true, y_pred, c)
    assert cm.sum() == len(y_true)
    assert m["accuracy"] == pytest.approx(np.trace(cm) / len(y_true))
    assert sum(pc["support"] for pc in m["per_class"].values()) == len(y_true)
    for key in ("accuracy", "macro_f1", "weighted_f1", "balanced_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    for pc in m["per_class"].values():
        assert all(0.0 <= pc[k] <= 1.0 for k in ("precision", "recall", "f1"))


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 9), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_top1_from_probs_equals_accuracy_of_argmax(c, n, seed):
    rng = np.random.default_rng(seed)
    logits = rng.integers(-2, 3, size=(n, c)).astype(float)  # small integers: plenty of ties
    probs = softmax(logits)
    y = rng.integers(0, c, n)
    assert topk_accuracy(probs, y, 1) == pytest.approx(np.mean(probs.argmax(1) == y))
    ks = [topk_accuracy(probs, y, k) for k in range(1, c + 1)]
    assert ks == sorted(ks) and ks[-1] == 1.0


def test_matches_scikit_learn_when_installed():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    c, n = 7, 300
    y_true = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y_true] += 1.0
    probs = softmax(logits).astype(np.float64)
    probs /= probs.sum(axis=1, keepdims=True)  # exact float64 rows: sklearn warns about float32 rounding
    y_pred = probs.argmax(1)
    y_pred[y_pred == 6] = 5  # class 6 is never predicted: exercises zero_division
    m = classification_metrics(y_true, y_pred, [f"c{i}" for i in range(c)], probs=probs)
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert m["weighted_f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="weighted", zero_division=0))
    assert m["balanced_accuracy"] == pytest.approx(sk.balanced_accuracy_score(y_true, y_pred))
    assert m["log_loss"] == pytest.approx(sk.log_loss(y_true, probs, labels=range(c)))
    assert m["top5_accuracy"] == pytest.approx(sk.top_k_accuracy_score(y_true, probs, k=5, labels=range(c)))
    p, r, f, s = sk.precision_recall_fscore_support(y_true, y_pred, labels=range(c), zero_division=0)
    for i in range(c):
        pc = m["per_class"][f"c{i}"]
        assert (pc["precision"], pc["recall"], pc["f1"], pc["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, c), sk.confusion_matrix(y_true, y_pred))
