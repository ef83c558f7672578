"""clfkit.report.intervals: Wilson against published and independently computed values, the bootstrap against a
slow per-resample loop over classification_metrics, determinism, degenerate cases, and the wiring into the
metrics dict and its tables."""
from __future__ import annotations

import json
import re
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clfkit.report.intervals import bootstrap_ci, bootstrap_cis, format_interval, wilson
from clfkit.report.metrics import classification_metrics, compare_per_class, format_metrics_table, per_class_table

Y_TRUE = [0, 0, 0, 1, 1, 2]
Y_PRED = [0, 0, 1, 1, 2, 2]
NAMES = ["cat", "dog", "owl"]


def _noisy(n: int, c: int, accuracy: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, c, n)
    y_pred = np.where(rng.random(n) < accuracy, y_true, rng.integers(0, c, n))
    return y_true, y_pred


# --------------------------------------------------------------------------------------------- Wilson
def test_wilson_matches_the_published_example():
    # 81 successes in 263 trials, 95 %: [0.2553, 0.3662] (the usual worked example of the Wilson interval)
    lo, hi = wilson(81, 263)
    assert (round(lo, 4), round(hi, 4)) == (0.2553, 0.3662)


def test_wilson_matches_scipy_when_installed():
    stats = pytest.importorskip("scipy.stats")
    z = float(stats.norm.ppf(0.975))  # scipy's 95 % uses the exact quantile, not 1.96
    for k, n in [(81, 263), (0, 7), (7, 7), (1, 2), (204, 218), (3, 1000)]:
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson(k, n, z=z) == pytest.approx([ref.low, ref.high], abs=1e-12)


def test_wilson_edges_follow_the_closed_forms():
    # at k = 0 the interval is [0, z²/(n + z²)], at k = n it is [n/(n + z²), 1]: the Wald interval would be [0, 0]
    z2 = 1.96 ** 2
    assert wilson(0, 10) == pytest.approx([0.0, z2 / (10 + z2)])
    assert wilson(10, 10) == pytest.approx([10 / (10 + z2), 1.0])
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0


def test_wilson_of_nothing_is_none_and_bad_counts_are_refused():
    assert wilson(0, 0) is None
    for k, n in [(5, 4), (-1, 3), (1.5, 3), (1, -2)]:
        with pytest.raises(ValueError, match="wilson needs"):
            wilson(k, n)
    with pytest.raises(ValueError, match="z must be"):
        wilson(1, 2, z=0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_contains_the_proportion_and_stays_in_unit_interval(kn):
    k, n = kn
    lo, hi = wilson(k, n)
    assert 0.0 <= lo <= k / n <= hi <= 1.0
    assert hi - lo > 0


def test_wilson_width_shrinks_with_n():
    widths = [hi - lo for lo, hi in (wilson(n // 2, n) for n in (10, 40, 160, 640, 2560))]
    assert widths == sorted(widths, reverse=True)
    # at fixed p the width goes as 1/sqrt(n): four times the images, about half the width
    assert widths[-2] / widths[-1] == pytest.approx(2.0, rel=0.01)


# --------------------------------------------------------------------------------------------- bootstrap
def _slow_reference(y_true, y_pred, n_boot: int, seed: int, names) -> dict[str, list[float]]:
    """One resample at a time through classification_metrics: what the vectorised bootstrap must equal."""
    rng = np.random.default_rng(seed)
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    stats: dict[str, list[float]] = {"macro_f1": [], "balanced_accuracy": [], "accuracy": []}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_true), size=len(y_true))
        m = classification_metrics(y_true[idx], y_pred[idx], names, n_boot=0)
        for key in stats:
            stats[key].append(m[key])
    return {key: list(np.percentile(v, [2.5, 97.5])) for key, v in stats.items()}


def test_bootstrap_matches_a_slow_loop_over_classification_metrics():
    # 5 classes over 40 images: resamples often lose a class, which macro-F1 and balanced accuracy must handle
    # exactly as classification_metrics does on the resample
    y_true, y_pred = _noisy(40, 5, 0.6, seed=3)
    y_true[y_true == 4] = 3
    y_true[0], y_pred[[1, 2, 3, 5]] = 4, 4  # class 4: one true image, predicted 5 times; a third of resamples
    # lose its only true image (predicted, no support: in macro-F1, not in balanced accuracy)
    names = [f"c{i}" for i in range(5)]
    fast = bootstrap_cis(y_true, y_pred, ("macro_f1", "balanced_accuracy", "accuracy"), n_boot=300, seed=7)
    slow = _slow_reference(y_true, y_pred, 300, 7, names)
    for key in slow:
        assert fast[key] == pytest.approx(slow[key], abs=1e-12), key


def test_bootstrap_is_deterministic_for_a_seed_and_varies_with_it():
    y_true, y_pred = _noisy(300, 4, 0.8, seed=0)
    a = bootstrap_ci(y_true, y_pred, "macro_f1", n_boot=500, seed=11)
    assert a == bootstrap_ci(y_true, y_pred, "macro_f1", n_boot=500, seed=11)
    assert a != bootstrap_ci(y_true, y_pred, "macro_f1", n_boot=500, seed=12)


def test_bootstrap_chunks_do_not_change_the_result(monkeypatch):
    import clfkit.report.intervals as intervals

    y_true, y_pred = _noisy(50, 3, 0.7, seed=2)
    whole = bootstrap_ci(y_true, y_pred, "macro_f1", n_boot=200, seed=5)
    monkeypatch.setattr(intervals, "_CHUNK_ELEMENTS", 50 * 7)  # 7 resamples per chunk, the last one short
    assert bootstrap_ci(y_true, y_pred, "macro_f1", n_boot=200, seed=5) == whole


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_more_images():
    names = [f"c{i}" for i in range(6)]
    widths = []
    for n in (100, 1600):
        y_true, y_pred = _noisy(n, 6, 0.85, seed=n)
        m = classification_metrics(y_true, y_pred, names)
        for key in ("macro_f1", "balanced_accuracy"):
            lo, hi = m[f"{key}_ci95"]
            assert lo <= m[key] <= hi, (n, key)
        widths.append(m["macro_f1_ci95"][1] - m["macro_f1_ci95"][0])
    assert widths[1] < widths[0] / 2  # 16x the images: about a quarter of the width


def test_bootstrap_degenerate_cases():
    assert bootstrap_ci([], [], "macro_f1") is None
    assert bootstrap_cis([], [], ("accuracy", "macro_f1")) == {"accuracy": None, "macro_f1": None}
    # every prediction right: every resample scores 1, so the bootstrap interval is the point [1, 1]
    assert bootstrap_ci([0, 1, 2, 1], [0, 1, 2, 1], "macro_f1", n_boot=50) == [1.0, 1.0]
    assert bootstrap_ci([2], [0], "accuracy", n_boot=50) == [0.0, 0.0]
    # a statistic that is never finite has no interval; one that sometimes is drops the other resamples
    assert bootstrap_ci([0, 1], [0, 1], lambda tp, s, p: np.full(len(tp), np.nan), n_boot=20) is None
    with pytest.raises(ValueError, match="unknown bootstrap statistic 'f2'"):
        bootstrap_ci([0, 1], [0, 1], "f2")
    with pytest.raises(ValueError, match="n_boot must be"):
        bootstrap_ci([0, 1], [0, 1], "accuracy", n_boot=0)
    with pytest.raises(ValueError, match="must match one-to-one"):
        bootstrap_ci([0, 1], [0], "accuracy")


def test_a_custom_statistic_sees_per_class_counts():
    y_true, y_pred = _noisy(120, 3, 0.75, seed=4)

    def recall_of_class_0(tp, support, predicted):  # (B, C) counts → (B,)
        return tp[:, 0] / support[:, 0]

    ci = bootstrap_ci(y_true, y_pred, recall_of_class_0, n_boot=400, seed=0)
    recall = float(np.mean(y_pred[y_true == 0] == 0))
    assert ci[0] <= recall <= ci[1]
    assert "recall_of_class_0" in bootstrap_cis(y_true, y_pred, [recall_of_class_0], n_boot=10)


def test_bootstrap_of_ten_thousand_images_is_fast():
    y_true, y_pred = _noisy(10_000, 9, 0.9, seed=0)
    bootstrap_cis(y_true[:100], y_pred[:100], ("macro_f1",), n_boot=10)  # warm up
    start = time.perf_counter()
    bootstrap_cis(y_true, y_pred, ("macro_f1", "balanced_accuracy"), n_boot=1000, seed=0)
    # ~0.15 s here; a per-resample loop through classification_metrics takes ~100x longer. Generous for a busy CI.
    assert time.perf_counter() - start < 3.0


# --------------------------------------------------------------------------------------------- wiring
def test_classification_metrics_carries_json_ready_intervals():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES + ["eel"])
    text = json.dumps(m, allow_nan=False)  # plain floats and None: no NaN, no numpy types
    back = json.loads(text)
    assert back["accuracy_ci95"] == pytest.approx(wilson(4, 6))
    for key in ("accuracy", "macro_f1", "balanced_accuracy"):
        lo, hi = back[f"{key}_ci95"]
        assert 0.0 <= lo <= back[key] <= hi <= 1.0, key
    cat = back["per_class"]["cat"]  # 2 of 3 cats found; 2 of the 2 "cat" predictions right
    assert cat["recall_ci95"] == pytest.approx(wilson(2, 3)) and cat["precision_ci95"] == pytest.approx(wilson(2, 2))
    eel = back["per_class"]["eel"]  # never in the data, never predicted: no interval, not [nan, nan]
    assert eel["recall_ci95"] is None and eel["precision_ci95"] is None
    assert back["ci95_method"]["bootstrap_resamples"] == 1000 and back["ci95_method"]["bootstrap_seed"] == 0
    # the bootstrap is seeded: the same data give the same report on every run
    assert classification_metrics(Y_TRUE, Y_PRED, NAMES)["macro_f1_ci95"] == \
        classification_metrics(Y_TRUE, Y_PRED, NAMES)["macro_f1_ci95"]


def test_classification_metrics_bootstrap_can_be_skipped_or_reseeded():
    y_true, y_pred = _noisy(200, 4, 0.7, seed=9)
    names = list("abcd")
    skipped = classification_metrics(y_true, y_pred, names, n_boot=0)
    assert skipped["macro_f1_ci95"] is None and skipped["balanced_accuracy_ci95"] is None
    assert skipped["accuracy_ci95"] is not None  # Wilson needs no resampling
    default = classification_metrics(y_true, y_pred, names)
    assert default["macro_f1_ci95"] == bootstrap_ci(y_true, y_pred, "macro_f1", 1000, 0)
    assert classification_metrics(y_true, y_pred, names, seed=1)["macro_f1_ci95"] != default["macro_f1_ci95"]


def test_tables_show_the_intervals():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    rows = per_class_table(m)
    assert rows[0]["recall_ci95"] == m["per_class"]["cat"]["recall_ci95"]
    text = format_metrics_table(m)
    lines = text.splitlines()
    assert "recall 95 % CI" in lines[0]
    assert len({len(line) for line in lines[:5]}) == 1  # the interval column keeps the table aligned
    cat = re.escape(format_interval(wilson(2, 3)))
    assert re.search(rf"^cat\s+1\.0000\s+0\.6667\s+{cat}\s+0\.8000\s+3$", text, re.M)
    acc = re.escape(format_interval(wilson(4, 6)))
    assert re.search(rf"^accuracy\s+0\.6667\s+{acc}$", text, re.M)
    f1 = re.escape(format_interval(m["macro_f1_ci95"]))
    assert re.search(rf"^macro F1\s+0\.6556\s+{f1}$", text, re.M)
    assert "95 % interval: Wilson" in text


def test_tables_of_metrics_from_before_intervals_still_render():
    m = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    old = {k: v for k, v in m.items() if not k.endswith("_ci95")}
    old["per_class"] = {n: {k: v for k, v in pc.items() if not k.endswith("_ci95")} for n, pc in m["per_class"].items()}
    text = format_metrics_table(old)
    assert "95 % CI" not in text and "[" not in text
    assert re.search(r"^accuracy\s+0\.6667$", text, re.M)


def test_per_class_comparison_carries_both_intervals():
    a = classification_metrics(Y_TRUE, Y_PRED, NAMES)
    b = classification_metrics(Y_TRUE, Y_TRUE, NAMES)
    rows = compare_per_class(a, b, "no_tta", "tta")
    assert rows[0]["no_tta_ci95"] == a["per_class"]["cat"]["recall_ci95"]
    assert rows[0]["tta_ci95"] == wilson(3, 3)
    assert rows[-1]["no_tta_ci95"] == a["accuracy_ci95"] and rows[-1]["tta_ci95"] == b["accuracy_ci95"]


def test_format_interval():
    assert format_interval([0.25, 0.5]) == "[0.2500, 0.5000]"
    assert format_interval([0.9012, 0.9604], percent=True) == "[90.1, 96.0]"
    assert format_interval([0.9012, 0.9604], percent=True, digits=2) == "[90.12, 96.04]"
    assert format_interval(None) == "[n/a]"
