"""Ratios and target checks computed from measured rows.  Pure: no timing, no I/O, no torch.

Inputs are the benchmark's row lists (``latency``: backend, batch_size, p50_ms, images_per_s; ``e2e``:
backend, tta, images_per_s, top1) so every number in the verdict can be traced to a row of results.csv.

The peer ratios (:func:`peer_ratios`) put each clfkit runtime row against eager PyTorch fp32 (the baseline),
the best PyTorch (torch.compile) and OpenVINO used directly, on batch-1 latency, model-only throughput at the
end-to-end batch size and end-to-end throughput; every ratio is "how many times faster clfkit is".
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from clfkit.report.intervals import wilson
from clfkit.report.metrics import topk_accuracy

__all__ = ["BASELINE", "REFERENCE", "TARGET_E2E_SPEEDUP", "TARGET_LATENCY_B1_SPEEDUP", "TARGET_E2E_OVER_MODEL",
           "INT8_MAX_LOSS_POINTS", "PEER_ROLES", "find_row", "ratio", "accuracy_row", "e2e_over_model_only",
           "peer_ratios", "summarize"]

BASELINE = "pytorch fp32"
REFERENCE = "onnxruntime fp32"
TARGET_E2E_SPEEDUP = 4.0  # onnxruntime fp32 end-to-end images/s >= 4x the PyTorch baseline's
TARGET_LATENCY_B1_SPEEDUP = 4.0  # batch-1 p50 >= 4x lower
TARGET_E2E_OVER_MODEL = 0.8  # end to end >= 80 % of model-only throughput at the same batch size
INT8_MAX_LOSS_POINTS = 1.0  # int8 top-1 (no TTA) at most 1 percentage point below onnxruntime fp32

# What clfkit's rows are compared with, in the order of the report: role → the key suffix in the summary.
PEER_ROLES = ("pytorch_eager", "pytorch_best", "openvino")

Row = Mapping[str, Any]


def find_row(rows: Sequence[Row], **match: Any) -> Row | None:
    """The first row whose items equal ``match``; None when there is none."""
    for row in rows:
        if all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return float(numerator) / float(denominator)


def accuracy_row(probs: np.ndarray, labels: np.ndarray, reference: np.ndarray | None) -> dict[str, Any]:
    """top-1, top-5 (only with more than 5 classes), their 95 % Wilson intervals ``top1_ci95``/``top5_ci95``, and
    agreement / max |Δprob| against ``reference`` probs."""
    labels = np.asarray(labels)
    num_classes = probs.shape[1]
    row: dict[str, Any] = {
        "top1": topk_accuracy(probs, labels, 1),
        "top5": topk_accuracy(probs, labels, 5) if num_classes > 5 else None,
    }
    n = int(labels.size)
    # an accuracy is k / n exactly, so round(acc * n) recovers the count the interval needs
    row["top1_ci95"] = wilson(round(row["top1"] * n), n)
    row["top5_ci95"] = None if row["top5"] is None else wilson(round(row["top5"] * n), n)
    if reference is not None:
        row["agreement_top1"] = float(np.mean(probs.argmax(1) == reference.argmax(1)))
        row["max_abs_dprob"] = float(np.max(np.abs(probs.astype(np.float64) - reference)))
    return row


def e2e_over_model_only(latency: Sequence[Row], row: Row) -> float | None:
    """An end-to-end row's images/s as a share of the same backend's model-only images/s at the same batch size;
    None for a TTA row (it runs batch × views images per call) or when that batch size was not timed."""
    if row.get("tta", 0) > 1:
        return None
    model = find_row(latency, backend=row["backend"], batch_size=row["batch_size"])
    return ratio(row.get("images_per_s"), model and model.get("images_per_s"))


def _clfkit_vs(latency: Sequence[Row], e2e: Sequence[Row], backend: str, peer: str,
               batch_size: int) -> dict[str, float | None]:
    """How many times faster ``backend`` is than ``peer``: batch-1 p50, model-only images/s, end-to-end images/s."""
    b1, peer_b1 = find_row(latency, backend=backend, batch_size=1), find_row(latency, backend=peer, batch_size=1)
    model = find_row(latency, backend=backend, batch_size=batch_size)
    peer_model = find_row(latency, backend=peer, batch_size=batch_size)
    run, peer_run = find_row(e2e, backend=backend, tta=0), find_row(e2e, backend=peer, tta=0)
    return {"latency_b1_speedup": ratio(peer_b1 and peer_b1.get("p50_ms"), b1 and b1.get("p50_ms")),
            "model_only_speedup": ratio(model and model.get("images_per_s"),
                                        peer_model and peer_model.get("images_per_s")),
            "e2e_speedup": ratio(run and run.get("images_per_s"), peer_run and peer_run.get("images_per_s"))}


def peer_ratios(latency: Sequence[Row], e2e: Sequence[Row], *, clfkit: Sequence[str],
                versus: Mapping[str, str | None], batch_size: int) -> list[dict[str, Any]]:
    """One row per (clfkit backend, peer role): the three speed-ups of :func:`_clfkit_vs`; ``versus`` maps a role
    of :data:`PEER_ROLES` to its row name (None: that peer did not run, so no row)."""
    rows = []
    for backend in clfkit:
        for role in PEER_ROLES:
            peer = versus.get(role)
            if peer is not None:
                rows.append({"backend": backend, "versus": role, "versus_backend": peer,
                             "model_only_batch_size": batch_size,
                             **_clfkit_vs(latency, e2e, backend, peer, batch_size)})
    return rows


def _target(tid: str, description: str, value: float | None, threshold: float, met: bool | None,
            detail: str) -> dict[str, Any]:
    return {"id": tid, "description": description, "value": value, "threshold": threshold, "met": met,
            "detail": detail}


def _met(value: float | None, threshold: float) -> bool | None:
    return None if value is None else value >= threshold


def _int8_verdict(latency: Sequence[Row], e2e: Sequence[Row], int8: str, reference: str) -> dict[str, Any] | None:
    fp32_e2e, int8_e2e = find_row(e2e, backend=reference, tta=0), find_row(e2e, backend=int8, tta=0)
    if int8_e2e is None or fp32_e2e is None:
        return None
    e2e_speedup = ratio(int8_e2e.get("images_per_s"), fp32_e2e.get("images_per_s"))
    b1_fp32, b1_int8 = find_row(latency, backend=reference, batch_size=1), find_row(latency, backend=int8, batch_size=1)
    b1_speedup = ratio(b1_fp32 and b1_fp32.get("p50_ms"), b1_int8 and b1_int8.get("p50_ms"))
    loss = (fp32_e2e["top1"] - int8_e2e["top1"]) * 100.0
    faster = e2e_speedup is not None and e2e_speedup > 1.0 and (b1_speedup is None or b1_speedup > 1.0)
    accurate = loss <= INT8_MAX_LOSS_POINTS
    if faster and accurate:
        reason = (f"int8 is faster ({e2e_speedup:.2f}x end to end) and loses {loss:.2f} points of top-1 "
                  f"(<= {INT8_MAX_LOSS_POINTS:g}): recommended on this machine")
    else:
        why = []
        if not faster:
            parts = [f"{e2e_speedup:.2f}x end to end" if e2e_speedup is not None else "end to end not measured"]
            if b1_speedup is not None:
                parts.append(f"{b1_speedup:.2f}x at batch 1")
            why.append("it is not faster than fp32 (" + ", ".join(parts) + ")")
        if not accurate:
            why.append(f"it loses {loss:.2f} points of top-1 (more than {INT8_MAX_LOSS_POINTS:g})")
        reason = "int8 is NOT recommended on this machine: " + " and ".join(why) + "; use the fp32 model"
    return {"backend": int8, "speedup_e2e": e2e_speedup, "speedup_latency_b1": b1_speedup,
            "top1_loss_points": loss, "faster": faster, "accuracy_ok": accurate, "recommended": faster and accurate,
            "reason": reason}


def summarize(latency: Sequence[Row], e2e: Sequence[Row], *, e2e_batch_size: int, baseline: str = BASELINE,
              reference: str = REFERENCE, int8: str | None = "onnxruntime int8", pytorch_best: str | None = None,
              openvino: str | None = None, clfkit: Sequence[str] | None = None,
              default: str | None = None) -> dict[str, Any]:
    """The headline ratios, the int8 verdict, the list of targets with met / missed / not measured, and the peer
    ratios of every ``clfkit`` row (default: ``reference`` only) against the baseline, ``pytorch_best`` and
    ``openvino`` (each None when that peer did not run).  The headline ratios and targets are those of
    ``default``, the row clf-infer's default flags run (``reference``, the plain fp32 export, when not given);
    the int8 verdict compares ``int8`` with ``reference``."""
    int8_reference = reference
    reference = default or reference
    base_e2e, ref_e2e = find_row(e2e, backend=baseline, tta=0), find_row(e2e, backend=reference, tta=0)
    speedup_e2e = ratio(ref_e2e and ref_e2e.get("images_per_s"), base_e2e and base_e2e.get("images_per_s"))
    base_b1, ref_b1 = find_row(latency, backend=baseline, batch_size=1), find_row(latency, backend=reference,
                                                                                   batch_size=1)
    speedup_b1 = ratio(base_b1 and base_b1.get("p50_ms"), ref_b1 and ref_b1.get("p50_ms"))
    ref_model = find_row(latency, backend=reference, batch_size=e2e_batch_size)
    # Not a target, but it keeps the baseline honest: how much of the end-to-end gain is the model itself.
    base_model = find_row(latency, backend=baseline, batch_size=e2e_batch_size)
    speedup_vs_base_model = ratio(ref_e2e and ref_e2e.get("images_per_s"),
                                  base_model and base_model.get("images_per_s"))
    e2e_over_model = ratio(ref_e2e and ref_e2e.get("images_per_s"), ref_model and ref_model.get("images_per_s"))
    targets = [
        _target("e2e_speedup", f"{reference} end-to-end images/s >= {TARGET_E2E_SPEEDUP:g}x the PyTorch baseline",
                speedup_e2e, TARGET_E2E_SPEEDUP, _met(speedup_e2e, TARGET_E2E_SPEEDUP),
                f"{_fmt(ref_e2e, 'images_per_s')} vs {_fmt(base_e2e, 'images_per_s')} images/s"),
        _target("latency_b1_speedup", f"batch-1 p50 latency >= {TARGET_LATENCY_B1_SPEEDUP:g}x lower than PyTorch fp32",
                speedup_b1, TARGET_LATENCY_B1_SPEEDUP, _met(speedup_b1, TARGET_LATENCY_B1_SPEEDUP),
                f"{_fmt(base_b1, 'p50_ms')} ms vs {_fmt(ref_b1, 'p50_ms')} ms"),
        _target("e2e_over_model_only",
                f"{reference} end to end >= {TARGET_E2E_OVER_MODEL:.0%} of its model-only throughput at batch "
                f"{e2e_batch_size} (decode hidden behind compute)",
                e2e_over_model, TARGET_E2E_OVER_MODEL, _met(e2e_over_model, TARGET_E2E_OVER_MODEL),
                f"{_fmt(ref_e2e, 'images_per_s')} vs {_fmt(ref_model, 'images_per_s')} images/s"),
    ]
    verdict = _int8_verdict(latency, e2e, int8, int8_reference) if int8 else None
    if verdict is not None:
        targets.append(_target(
            "int8", f"int8 faster than fp32 with <= {INT8_MAX_LOSS_POINTS:g} point top-1 loss (else not recommended)",
            verdict["speedup_e2e"], 1.0, verdict["recommended"], verdict["reason"]))
    versus = {"pytorch_eager": baseline, "pytorch_best": pytorch_best, "openvino": openvino}
    ratios = peer_ratios(latency, e2e, clfkit=list(clfkit) if clfkit is not None else [reference], versus=versus,
                         batch_size=e2e_batch_size)
    flat: dict[str, float | None] = {}
    for role, suffix in (("pytorch_best", "_vs_pytorch_best"), ("openvino", "_vs_openvino")):
        found = find_row(ratios, backend=reference, versus=role) or {}
        for key in ("e2e_speedup", "latency_b1_speedup", "model_only_speedup"):
            flat["speedup_" + key.removesuffix("_speedup") + suffix] = found.get(key)
    eager = find_row(ratios, backend=reference, versus="pytorch_eager") or {}
    return {"speedup_e2e": speedup_e2e, "speedup_latency_b1": speedup_b1, "e2e_vs_model_only": e2e_over_model,
            "speedup_e2e_vs_pytorch_model_only": speedup_vs_base_model,
            "speedup_model_only": eager.get("model_only_speedup"), **flat,
            "peer_roles": versus, "peer_ratios": ratios, "int8": verdict, "targets": targets}


def _fmt(row: Row | None, key: str) -> str:
    if row is None or row.get(key) is None:
        return "n/a"
    return f"{row[key]:.1f}"
