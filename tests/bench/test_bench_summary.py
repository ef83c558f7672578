"""Ratios, targets and the int8 verdict are computed from the measured rows, and say plainly what was missed."""
from __future__ import annotations

import numpy as np
import pytest

from clfkit.bench.summary import accuracy_row, summarize


def _latency(backend: str, batch: int, p50: float) -> dict:
    return {"backend": backend, "batch_size": batch, "p50_ms": p50, "images_per_s": batch / (p50 / 1000)}


def _e2e(backend: str, rate: float, top1: float, tta: int = 0) -> dict:
    return {"backend": backend, "tta": tta, "batch_size": 32, "images_per_s": rate, "top1": top1}


LATENCY = [
    _latency("pytorch fp32", 1, 40.0), _latency("onnxruntime fp32", 1, 8.0), _latency("onnxruntime int8", 1, 6.0),
    _latency("pytorch fp32", 32, 1500.0), _latency("onnxruntime fp32", 32, 320.0),
    _latency("onnxruntime int8", 32, 280.0),
]


def test_headline_ratios_come_from_the_rows() -> None:
    e2e = [_e2e("pytorch fp32", 20.0, 0.90), _e2e("onnxruntime fp32", 90.0, 0.90), _e2e("onnxruntime int8", 99.0, 0.9)]
    summary = summarize(LATENCY, e2e, e2e_batch_size=32)
    assert summary["speedup_e2e"] == pytest.approx(90.0 / 20.0)
    assert summary["speedup_latency_b1"] == pytest.approx(40.0 / 8.0)
    assert summary["e2e_vs_model_only"] == pytest.approx(90.0 / (32 / 0.320))
    assert summary["speedup_e2e_vs_pytorch_model_only"] == pytest.approx(90.0 / (32 / 1.5))
    status = {t["id"]: t["met"] for t in summary["targets"]}
    assert status == {"e2e_speedup": True, "latency_b1_speedup": True, "e2e_over_model_only": True, "int8": True}
    assert summary["int8"]["recommended"] is True


def test_missed_targets_are_marked_missed() -> None:
    e2e = [_e2e("pytorch fp32", 30.0, 0.90), _e2e("onnxruntime fp32", 60.0, 0.90)]
    summary = summarize(LATENCY, e2e, e2e_batch_size=32, int8=None)
    status = {t["id"]: t["met"] for t in summary["targets"]}
    assert status["e2e_speedup"] is False  # 2x < 4x
    assert status["e2e_over_model_only"] is False  # 60 of 100 img/s
    assert "int8" not in status and summary["int8"] is None


def test_unmeasured_ratios_are_none_not_zero() -> None:
    summary = summarize([_latency("pytorch fp32", 8, 100.0)], [], e2e_batch_size=8)
    assert summary["speedup_e2e"] is None and summary["speedup_latency_b1"] is None
    assert all(t["met"] is None for t in summary["targets"])


@pytest.mark.parametrize("rate, top1, faster, accurate", [
    (80.0, 0.90, False, True),   # slower end to end
    (99.0, 0.88, True, False),   # 2 points lost
    (70.0, 0.85, False, False),
])
def test_int8_is_not_recommended_when_slower_or_less_accurate(rate: float, top1: float, faster: bool,
                                                              accurate: bool) -> None:
    e2e = [_e2e("pytorch fp32", 20.0, 0.90), _e2e("onnxruntime fp32", 90.0, 0.90),
           _e2e("onnxruntime int8", rate, top1)]
    verdict = summarize(LATENCY, e2e, e2e_batch_size=32)["int8"]
    assert (verdict["faster"], verdict["accuracy_ok"], verdict["recommended"]) == (faster, accurate, False)
    assert verdict["reason"].startswith("int8 is NOT recommended")
    assert verdict["top1_loss_points"] == pytest.approx((0.90 - top1) * 100)


def test_accuracy_row_top5_only_with_more_than_five_classes() -> None:
    labels = np.array([0, 1, 2])
    probs3 = np.eye(3, dtype=np.float32)[[0, 1, 0]]
    row = accuracy_row(probs3, labels, reference=np.eye(3, dtype=np.float32)[[0, 1, 2]])
    assert row["top1"] == pytest.approx(2 / 3) and row["top5"] is None
    assert row["agreement_top1"] == pytest.approx(2 / 3)
    assert row["max_abs_dprob"] == pytest.approx(1.0)
    probs7 = np.full((3, 7), 1 / 7, np.float32)
    probs7[:, 6] += 0.01
    assert accuracy_row(probs7, labels, None)["top5"] == pytest.approx(1.0)  # ties go to the lower index
