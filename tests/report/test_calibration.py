"""clfkit.report.calibration: the temperature fit, the ECE and the reliability data, on synthetic logits whose
true calibration is known (labels drawn from softmax of the "true" logits, so those logits are calibrated)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import run_without_torch

from clfkit.report.calibration import (BINS, calibrate, calibration_block, expected_calibration_error,
                                       fit_temperature, nll, reliability, uncalibrated_probs)
from clfkit.spec import TEMPERATURE_RANGE


def _softmax(z: np.ndarray) -> np.ndarray:  # written out here, independent of clfkit's
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _calibrated_sample(n: int = 20_000, classes: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits (n, classes) and labels drawn from their own softmax: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0.0, 2.0, (n, classes))
    p = _softmax(z)
    labels = (p.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return z, labels


@pytest.mark.parametrize("factor", [3.0, 1.7, 0.4])
def test_fit_temperature_recovers_a_known_scaling(factor):
    z, y = _calibrated_sample()
    # logits scaled by `factor` are over-confident (> 1) or under-confident (< 1); T = factor undoes it
    t = fit_temperature(z * factor, y)
    assert t == pytest.approx(factor, rel=0.05)
    fit = calibrate(z * factor, y)
    assert fit.temperature == pytest.approx(t) and not fit.note
    assert fit.nll_after < fit.nll_before
    assert fit.nll_after == pytest.approx(nll(z * factor, y, t))


def test_the_fitted_temperature_is_the_nll_minimum():
    z, y = _calibrated_sample(n=3000, seed=1)
    t = fit_temperature(z * 2.0, y)
    best = nll(z * 2.0, y, t)
    for other in (t * 0.97, t * 1.03, 1.0):
        assert nll(z * 2.0, y, other) > best


def test_nll_is_the_mean_log_loss_of_the_tempered_softmax():
    z, y = _calibrated_sample(n=50, seed=2)
    expected = -np.mean(np.log(_softmax(z / 1.5)[np.arange(len(y)), y]))
    assert nll(z, y, 1.5) == pytest.approx(expected, rel=1e-12)


def test_ece_of_calibrated_probabilities_is_near_zero_and_of_overconfident_ones_large():
    z, y = _calibrated_sample()
    calibrated = expected_calibration_error(_softmax(z), y)
    over = expected_calibration_error(_softmax(3.0 * z), y)
    under = expected_calibration_error(_softmax(0.3 * z), y)
    assert calibrated < 0.015
    assert over > 0.1 and under > 0.1
    # the fitted temperature brings the ECE back down to the calibrated level
    t = fit_temperature(3.0 * z, y)
    assert expected_calibration_error(_softmax(3.0 * z / t), y) < 0.02


def test_ece_and_reliability_by_hand():
    # confidences 0.9, 0.9 (one right), 0.5 (right), 0.6 (wrong) in 15 bins of width 1/15
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.5, 0.5], [0.4, 0.6]])
    labels = np.array([0, 1, 0, 0])
    rel = reliability(probs, labels)
    assert rel.count.sum() == 4 and len(rel.count) == BINS and len(rel.edges) == BINS + 1
    b09, b05, b06 = (math.ceil(c * BINS) - 1 for c in (0.9, 0.5, 0.6))
    assert rel.count[b09] == 2 and rel.accuracy[b09] == 0.5 and rel.confidence[b09] == pytest.approx(0.9)
    assert rel.count[b05] == 1 and rel.accuracy[b05] == 1.0
    assert rel.count[b06] == 1 and rel.accuracy[b06] == 0.0
    expected = 2 / 4 * abs(0.5 - 0.9) + 1 / 4 * abs(1.0 - 0.5) + 1 / 4 * abs(0.0 - 0.6)
    assert rel.ece == pytest.approx(expected) == expected_calibration_error(probs, labels)
    assert np.isnan(rel.accuracy[0]) and rel.to_dict()["accuracy"][0] is None  # empty bins: no number


def test_bins_are_closed_on_the_right():
    edge = 1 / BINS
    probs = np.array([[edge, 1 - edge], [1.0, 0.0]])  # confidences 1 - 1/15 (bin 13) and exactly 1 (bin 14)
    rel = reliability(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0, 1]))
    assert rel.count[-1] == 2
    rel = reliability(probs, np.array([1, 0]))
    assert rel.count[BINS - 2] == 1 and rel.count[BINS - 1] == 1


def test_uncalibrated_probs_recovers_the_raw_softmax():
    z, _ = _calibrated_sample(n=200, seed=3)
    for t in (0.3, 1.0, 2.5):
        tempered = _softmax(z / t).astype(np.float32)  # what clf-infer writes
        np.testing.assert_allclose(uncalibrated_probs(tempered, t), _softmax(z), atol=2e-6)


def test_no_finite_optimum_keeps_t_1():
    z = np.array([[5.0, 0.0], [0.0, 5.0], [4.0, 1.0]])
    right = calibrate(z, np.array([0, 1, 0]))  # every sample right: NLL keeps falling as T → 0
    assert right.temperature == 1.0 and "keeps rising as T → 0" in right.note
    assert fit_temperature(z, np.array([0, 1, 0])) == pytest.approx(TEMPERATURE_RANGE[0], rel=1e-3)
    empty = calibrate(np.zeros((0, 3)), np.zeros(0, np.int64))
    assert empty.temperature == 1.0 and empty.num_samples == 0 and "no validation images" in empty.note


def test_calibration_block_has_the_report_keys():
    z, y = _calibrated_sample(n=500, seed=4)
    block = calibration_block(_softmax(z / 2), _softmax(z), y, 2.0)
    assert block["temperature"] == 2.0 and block["ece_bins"] == BINS
    assert block["ece"] == pytest.approx(expected_calibration_error(_softmax(z / 2), y))
    assert block["ece_uncalibrated"] == pytest.approx(expected_calibration_error(_softmax(z), y))
    assert sum(block["reliability"]["calibrated"]["count"]) == 500


@pytest.mark.parametrize("bad, message", [
    (dict(logits=np.zeros((3, 2)), labels=np.array([0, 1])), "labels"),
    (dict(logits=np.zeros((2, 2)), labels=np.array([0, 2])), "class indices"),
    (dict(logits=np.array([[np.nan, 0.0]]), labels=np.array([0])), "NaN"),
])
def test_bad_inputs_are_named(bad, message):
    with pytest.raises(ValueError, match=message):
        fit_temperature(**bad)


def test_calibration_imports_without_torch():
    result = run_without_torch(
        "import numpy as np\n"
        "from clfkit.report.calibration import fit_temperature, expected_calibration_error\n"
        "z = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]]); y = np.array([0, 0, 1])\n"
        "print(round(fit_temperature(z, y), 3) > 0, expected_calibration_error(np.array([[0.7, 0.3]]), [0]) > 0)\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
