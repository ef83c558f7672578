"""Ratios, targets and the int8 verdict are computed from the measured rows, and say plainly what was missed."""
from __future__ import annotations

import numpy as np
import pytest

from clfkit.bench.report import render_markdown
from clfkit.bench.summary import accuracy_row, e2e_over_model_only, summarize
from clfkit.report.intervals import format_interval, wilson


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


def test_accuracy_row_carries_wilson_intervals_and_the_report_shows_them() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    probs = np.eye(3)[[0, 1, 2, 0, 1, 2, 1, 1]]  # 7 of 8 right
    row = accuracy_row(probs, labels, None)
    assert row["top1_ci95"] == pytest.approx(wilson(7, 8)) and row["top5_ci95"] is None
    probs7 = np.eye(7)[[0, 1, 2, 0, 1, 2, 6, 1]] * 0.9 + 0.1 / 7  # class 6 for a 0: still in the top 5
    assert accuracy_row(probs7, labels, None)["top5_ci95"] == pytest.approx(wilson(8, 8))
    text = render_markdown({"e2e": [{"backend": "onnxruntime fp32", "tta": 0, "batch_size": 8,
                                     "images_per_s": 100.0, **row}]})
    assert f"| 87.50 % {format_interval(wilson(7, 8), percent=True)} |" in text
    assert "95 % Wilson interval" in text


# Every row has its own numbers, so a ratio taken from a neighbouring row (bf16 autocast instead of the compiled
# model, openvino fp32 instead of its default, batch 8 instead of the e2e batch) comes out different.
PEER_LATENCY = [
    _latency("pytorch fp32", 1, 40.0), _latency("pytorch fp32", 8, 300.0), _latency("pytorch fp32", 32, 1500.0),
    _latency("pytorch bf16 autocast", 1, 90.0), _latency("pytorch bf16 autocast", 32, 3000.0),
    _latency("pytorch compiled fp32", 1, 30.0), _latency("pytorch compiled fp32", 8, 200.0),
    _latency("pytorch compiled fp32", 32, 1000.0),
    _latency("onnxruntime fp32", 1, 8.0), _latency("onnxruntime fp32", 8, 50.0),
    _latency("onnxruntime fp32", 32, 320.0),
    _latency("onnxruntime int8", 1, 6.0), _latency("onnxruntime int8", 32, 250.0),
    _latency("openvino default", 1, 10.0), _latency("openvino default", 8, 64.0),
    _latency("openvino default", 32, 400.0),
    _latency("openvino fp32", 1, 11.0), _latency("openvino fp32", 32, 440.0),
]
PEER_E2E = [_e2e("pytorch fp32", 20.0, 0.9), _e2e("pytorch bf16 autocast", 12.0, 0.9),
            _e2e("pytorch compiled fp32", 25.0, 0.9), _e2e("onnxruntime fp32", 90.0, 0.9),
            _e2e("onnxruntime int8", 99.0, 0.9), _e2e("openvino default", 60.0, 0.9),
            _e2e("openvino fp32", 55.0, 0.9), _e2e("openvino default", 7.0, 0.9, tta=5)]


def _ips(batch: int, p50_ms: float) -> float:
    return batch / (p50_ms / 1000)


def test_peer_ratios_come_from_the_peer_rows() -> None:
    summary = summarize(PEER_LATENCY, PEER_E2E, e2e_batch_size=32, pytorch_best="pytorch compiled fp32",
                        openvino="openvino default", clfkit=["onnxruntime fp32", "onnxruntime int8"])
    ratios = {(r["backend"], r["versus"]): r for r in summary["peer_ratios"]}
    assert list(ratios) == [(b, role) for b in ("onnxruntime fp32", "onnxruntime int8")
                            for role in ("pytorch_eager", "pytorch_best", "openvino")]
    best = ratios["onnxruntime fp32", "pytorch_best"]
    assert best["versus_backend"] == "pytorch compiled fp32" and best["model_only_batch_size"] == 32
    assert best["latency_b1_speedup"] == pytest.approx(30.0 / 8.0)
    assert best["model_only_speedup"] == pytest.approx(_ips(32, 320.0) / _ips(32, 1000.0))
    assert best["e2e_speedup"] == pytest.approx(90.0 / 25.0)
    ov = ratios["onnxruntime int8", "openvino"]
    assert ov["latency_b1_speedup"] == pytest.approx(10.0 / 6.0)
    assert ov["model_only_speedup"] == pytest.approx(_ips(32, 250.0) / _ips(32, 400.0))
    assert ov["e2e_speedup"] == pytest.approx(99.0 / 60.0)  # the TTA row of openvino default is not the one
    eager = ratios["onnxruntime fp32", "pytorch_eager"]
    assert eager["model_only_speedup"] == pytest.approx(_ips(32, 320.0) / _ips(32, 1500.0))
    # the flat keys are the reference row's (onnxruntime fp32), not int8's
    assert summary["speedup_e2e_vs_pytorch_best"] == pytest.approx(90.0 / 25.0)
    assert summary["speedup_latency_b1_vs_pytorch_best"] == pytest.approx(30.0 / 8.0)
    assert summary["speedup_model_only_vs_pytorch_best"] == pytest.approx(1000.0 / 320.0)
    assert summary["speedup_e2e_vs_openvino"] == pytest.approx(90.0 / 60.0)
    assert summary["speedup_latency_b1_vs_openvino"] == pytest.approx(10.0 / 8.0)
    assert summary["speedup_model_only_vs_openvino"] == pytest.approx(400.0 / 320.0)
    assert summary["speedup_model_only"] == pytest.approx(1500.0 / 320.0)
    assert summary["speedup_e2e"] == pytest.approx(90.0 / 20.0)  # the existing key keeps its meaning


def test_peer_ratios_follow_the_model_only_batch_and_skip_absent_peers() -> None:
    summary = summarize(PEER_LATENCY, PEER_E2E, e2e_batch_size=8, openvino="openvino default")
    assert [r["versus"] for r in summary["peer_ratios"]] == ["pytorch_eager", "openvino"]
    ov = summary["peer_ratios"][1]
    assert ov["model_only_speedup"] == pytest.approx(64.0 / 50.0) and ov["model_only_batch_size"] == 8
    assert summary["speedup_e2e_vs_pytorch_best"] is None  # not run: None, not 0
    assert summary["peer_roles"] == {"pytorch_eager": "pytorch fp32", "pytorch_best": None,
                                     "openvino": "openvino default"}


def test_e2e_share_is_against_the_same_backends_model_only_row() -> None:
    row = _e2e("openvino default", 60.0, 0.9)
    assert e2e_over_model_only(PEER_LATENCY, row) == pytest.approx(60.0 / _ips(32, 400.0))
    assert e2e_over_model_only(PEER_LATENCY, _e2e("openvino default", 7.0, 0.9, tta=5)) is None
    assert e2e_over_model_only(PEER_LATENCY, {**row, "batch_size": 4}) is None  # batch 4 was not timed
